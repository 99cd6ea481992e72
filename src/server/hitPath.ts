import type { IncomingMessage, ServerResponse } from 'node:http';
import { CREDENTIALS_PREFIX, SERVER_HEADER_VALUE, TEXT_PLAIN, TOKEN_HEADER } from '../imds/protocol.js';
import type { ProxyServices } from './context.js';

/** Answers the request and returns true, or returns false having touched nothing. */
export type HitPath = (req: IncomingMessage, res: ServerResponse) => boolean;

const PREFIX = `${CREDENTIALS_PREFIX}/`;

/**
 * The one request this proxy exists to answer fast: GET of a role's cached credentials with
 * a valid token. It is answered here, on node:http's own objects, before hono builds a
 * Request, a Context and a middleware chain for it; on a busy host that is most requests.
 *
 * It is a shortcut, never a second implementation: it takes only a request it can answer
 * exactly as the hono route would (same status, headers, body and metrics) and hands
 * everything else, including every error case, to hono untouched. A request it declines
 * costs a method comparison and a prefix test.
 */
export function credentialsHitPath({ tokens, credentials, metrics }: Pick<ProxyServices, 'tokens' | 'credentials' | 'metrics'>): HitPath {
  return (req, res) => {
    if (req.method !== 'GET') return false;
    const url = req.url;
    if (url === undefined || !url.startsWith(PREFIX)) return false;
    const started = performance.now();
    const role = roleOf(url);
    if (role === undefined) return false;
    const token = req.headers[TOKEN_HEADER];
    if (typeof token !== 'string' || tokens.verify(token) !== 'valid') return false;
    const entry = credentials.peek(role);
    if (entry === undefined) return false;
    res.writeHead(200, { 'content-type': TEXT_PLAIN, server: SERVER_HEADER_VALUE, 'content-length': entry.bodyLength });
    // A string, not a Buffer: node then sends headers and body in one write(), not a writev().
    res.end(entry.body);
    metrics.request('credentials', 'GET', 200, (performance.now() - started) / 1000);
    return true;
  };
}

/**
 * `<role>` or `<role>/` after the prefix; undefined for anything the router should judge
 * (more segments, a query, %-escapes, an empty name).
 */
function roleOf(url: string): string | undefined {
  let end = url.length;
  if (url.charCodeAt(end - 1) === 0x2f /* / */) end--;
  if (end <= PREFIX.length) return undefined;
  for (let i = PREFIX.length; i < end; i++) {
    const c = url.charCodeAt(i);
    if (c === 0x2f /* / */ || c === 0x3f /* ? */ || c === 0x25 /* % */ || c === 0x23 /* # */) return undefined;
  }
  return url.slice(PREFIX.length, end);
}
