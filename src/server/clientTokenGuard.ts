import type { MiddlewareHandler } from 'hono';
import { TOKEN_HEADER, TOKEN_PATH } from '../imds/protocol.js';
import type { ProxyServices } from './context.js';
import { asResponse, errorAnswer, type Answer } from './responses.js';

const UNAUTHORIZED = errorAnswer(401);

/** The 401 for a token header value, or undefined when the request may go on. */
export type ClientTokenCheck = (token: string | string[] | undefined) => Answer | undefined;

/**
 * Every GET/HEAD under /latest/ needs a valid token of ours. An invalid or expired token is
 * a 401 in every mode, as on IMDS; a missing one is a 401 only when tokens are required.
 * Repeated token headers arrive joined (`a, b`) and are one invalid token.
 */
export function clientTokenCheck({ tokens, metrics, clientTokens }: ProxyServices): ClientTokenCheck {
  const required = clientTokens === 'required';
  return (token) => {
    if (token === undefined || token === '') {
      if (!required) return undefined;
      metrics.tokenRejected('missing');
      return UNAUTHORIZED;
    }
    const verdict = typeof token === 'string' ? tokens.verify(token) : 'invalid';
    if (verdict === 'valid') return undefined;
    metrics.tokenRejected(verdict);
    return UNAUTHORIZED;
  };
}

/** The same check as hono middleware, for the routes the hono app serves. */
export function clientTokenGuard(services: ProxyServices): MiddlewareHandler {
  const check = clientTokenCheck(services);
  return async (c, next) => {
    const method = c.req.method;
    if ((method !== 'GET' && method !== 'HEAD') || c.req.path === TOKEN_PATH) return next();
    const refusal = check(c.req.header(TOKEN_HEADER));
    return refusal === undefined ? next() : asResponse(refusal);
  };
}
