import type { IncomingHttpHeaders } from 'node:http';
import { FORWARDED_FOR_HEADER, SERVER_HEADER_VALUE, TEXT_PLAIN, TOKEN_ROUTE_ALLOW, TOKEN_TTL_HEADER, parseTokenTtl } from '../../imds/protocol.js';
import type { ProxyServices } from '../context.js';
import { errorAnswer, type Answer } from '../responses.js';

/** The token PUT has no body; a large one is somebody's mistake or an attack. */
const MAX_TOKEN_BODY_BYTES = 1024;

const FORBIDDEN = errorAnswer(403);
const TOO_LARGE = errorAnswer(413);
const BAD_TTL = errorAnswer(400);
const NOT_ALLOWED = errorAnswer(405, { allow: TOKEN_ROUTE_ALLOW });
const OPTIONS: Answer = { status: 200, headers: { allow: TOKEN_ROUTE_ALLOW, server: SERVER_HEADER_VALUE, 'content-length': 0 }, body: '' };

/**
 * `/latest/api/token`, answered locally: a token request never reaches upstream. The TTL is
 * echoed in the response header because the Go SDK v2 reads it and, without it, silently
 * drops to tokenless requests on every call. 403 only for `X-Forwarded-For` and 405 only for
 * a method other than PUT/OPTIONS: SDKs read either as "no IMDSv2 here".
 */
export function tokenRoute({ tokens, metrics }: Pick<ProxyServices, 'tokens' | 'metrics'>): (method: string, headers: IncomingHttpHeaders) => Answer {
  return (method, headers) => {
    if (method === 'OPTIONS') return OPTIONS;
    if (method !== 'PUT') return NOT_ALLOWED;
    // IMDSv2's guard against SSRF through reverse proxies: whatever the header's value.
    if (headers[FORWARDED_FOR_HEADER] !== undefined) {
      metrics.tokenRejected('forwarded');
      return FORBIDDEN;
    }
    if (Number(headers['content-length'] ?? 0) > MAX_TOKEN_BODY_BYTES) return TOO_LARGE;
    const ttlHeader = headers[TOKEN_TTL_HEADER];
    const ttl = parseTokenTtl(typeof ttlHeader === 'string' ? ttlHeader : undefined);
    if (ttl === undefined) {
      metrics.tokenRejected('bad_ttl');
      return BAD_TTL;
    }
    metrics.tokenIssued();
    const token = tokens.mint(ttl);
    // Built directly, not through textAnswer: one of the three requests of every fresh SDK process.
    return {
      status: 200,
      headers: { 'content-type': TEXT_PLAIN, server: SERVER_HEADER_VALUE, [TOKEN_TTL_HEADER]: String(ttl), 'content-length': token.length },
      body: token,
    };
  };
}
