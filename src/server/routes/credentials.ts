import type { Context, Hono } from 'hono';
import { CREDENTIALS_PREFIX } from '../../imds/protocol.js';
import type { ProxyServices } from '../context.js';
import { imdsError, imdsText, serviceUnavailable } from '../responses.js';

const UNAVAILABLE = 'no valid credentials cached and upstream IMDS is failing';

/**
 * The role listing and the role's credentials, both from the credential cache. The listing
 * is served with and without the trailing slash (real IMDS redirects the slashless form;
 * answering both serves clients that do not follow redirects).
 */
export function registerCredentialRoutes(app: Hono, { credentials }: ProxyServices): void {
  const list = async () => {
    const lookup = await credentials.roleList();
    if (lookup.kind === 'unavailable') return serviceUnavailable(UNAVAILABLE, lookup.retryAfterSeconds);
    if (lookup.roles.length === 0) return imdsError(404);
    return imdsText(lookup.body);
  };
  const role = async (c: Context) => {
    const lookup = await credentials.credentials(c.req.param('role') ?? '');
    if (lookup.kind === 'found') return imdsText(lookup.entry.body);
    if (lookup.kind === 'not_found') return imdsError(404);
    return serviceUnavailable(UNAVAILABLE, lookup.retryAfterSeconds);
  };
  app.get(CREDENTIALS_PREFIX, list);
  app.get(`${CREDENTIALS_PREFIX}/`, list);
  app.get(`${CREDENTIALS_PREFIX}/:role{[^/]+}`, role);
  app.get(`${CREDENTIALS_PREFIX}/:role{[^/]+}/`, role);
}
