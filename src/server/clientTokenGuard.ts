import type { MiddlewareHandler } from 'hono';
import { TOKEN_HEADER, TOKEN_PATH } from '../imds/protocol.js';
import type { ProxyServices } from './context.js';
import { imdsError } from './responses.js';

/**
 * Every GET/HEAD under /latest/ needs a valid token of ours. An invalid or expired token is
 * a 401 in every mode, as on IMDS; a missing one is a 401 only when tokens are required.
 */
export function clientTokenGuard({ tokens, metrics, clientTokens }: ProxyServices): MiddlewareHandler {
  const required = clientTokens === 'required';
  return async (c, next) => {
    const method = c.req.method;
    if ((method !== 'GET' && method !== 'HEAD') || c.req.path === TOKEN_PATH) return next();
    const token = c.req.header(TOKEN_HEADER);
    if (token === undefined || token === '') {
      if (required) {
        metrics.tokenRejected('missing');
        return imdsError(401);
      }
      return next();
    }
    const verdict = tokens.verify(token);
    if (verdict !== 'valid') {
      metrics.tokenRejected(verdict);
      return imdsError(401);
    }
    return next();
  };
}
