import type { Hono } from 'hono';
import {
  FORWARDED_FOR_HEADER,
  SERVER_HEADER_VALUE,
  TOKEN_PATH,
  TOKEN_ROUTE_ALLOW,
  TOKEN_TTL_HEADER,
  parseTokenTtl,
} from '../../imds/protocol.js';
import type { ProxyServices } from '../context.js';
import { imdsError, imdsText } from '../responses.js';

/**
 * `PUT /latest/api/token`, answered locally: a token request never reaches upstream.
 * The TTL is echoed in the response header because the Go SDK v2 reads it and, without it,
 * silently drops to tokenless requests on every call.
 */
const MAX_TOKEN_BODY_BYTES = 1024;

export function registerTokenRoutes(app: Hono, { tokens, metrics }: ProxyServices): void {
  app.put(TOKEN_PATH, (c) => {
    // IMDSv2's guard against SSRF through reverse proxies: whatever the header's value.
    if (c.req.header(FORWARDED_FOR_HEADER) !== undefined) {
      metrics.tokenRejected('forwarded');
      return imdsError(403);
    }
    // The token PUT has no body; a large one is somebody's mistake or an attack.
    if (Number(c.req.header('content-length') ?? 0) > MAX_TOKEN_BODY_BYTES) return imdsError(413);
    const ttl = parseTokenTtl(c.req.header(TOKEN_TTL_HEADER));
    if (ttl === undefined) {
      metrics.tokenRejected('bad_ttl');
      return imdsError(400);
    }
    metrics.tokenIssued();
    return imdsText(tokens.mint(ttl), 200, { [TOKEN_TTL_HEADER]: String(ttl) });
  });
  app.options(TOKEN_PATH, () => new Response(null, { status: 200, headers: { allow: TOKEN_ROUTE_ALLOW, server: SERVER_HEADER_VALUE } }));
  app.all(TOKEN_PATH, () => imdsError(405, { allow: TOKEN_ROUTE_ALLOW }));
}
