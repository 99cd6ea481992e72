import type { Hono } from 'hono';
import { formatImdsTime } from '../../imds/protocol.js';
import type { ProxyServices } from '../context.js';
import { CREDENTIALS_UNAVAILABLE } from './credentials.js';

export const CONTAINER_CREDENTIALS_PATH = '/container-credentials';

const json = (status: number, body: unknown, extra?: Record<string, string>) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...extra } });

const unavailable = (retryAfterSeconds: number) =>
  json(503, { code: 'ServiceUnavailable', message: CREDENTIALS_UNAVAILABLE }, { 'retry-after': String(retryAfterSeconds) });
const noProfile = () => json(404, { code: 'NotFound', message: 'the instance has no instance profile' });

/**
 * Credentials in the container-credentials format (`AWS_CONTAINER_CREDENTIALS_FULL_URI`),
 * for containers and SDKs where redirecting IMDS is awkward. Guarded by the Authorization
 * token in `--container-auth-token-file` (see ContainerAuthTokenFile).
 */
export function registerContainerCredentialRoutes(app: Hono, { credentials, containerAuth }: ProxyServices): void {
  if (containerAuth === undefined) return;
  app.get(CONTAINER_CREDENTIALS_PATH, async (c) => {
    const given = c.req.header('authorization');
    if (given === undefined || !(await containerAuth.accepts(given))) {
      return json(401, { code: 'Unauthorized', message: 'missing or wrong Authorization token' });
    }
    const roles = await credentials.roleList();
    if (roles.kind === 'unavailable') return unavailable(roles.retryAfterSeconds);
    const role = roles.roles[0];
    if (role === undefined) return noProfile();
    const lookup = await credentials.lookup(role);
    if (lookup.kind === 'not_found') return noProfile();
    if (lookup.kind === 'unavailable') return unavailable(lookup.retryAfterSeconds);
    const { accessKeyId, secretAccessKey, token, expiration, accountId } = lookup.entry.credentials;
    return json(200, {
      AccessKeyId: accessKeyId,
      SecretAccessKey: secretAccessKey,
      Token: token,
      Expiration: formatImdsTime(expiration),
      ...(accountId !== undefined ? { AccountId: accountId } : {}),
    });
  });
}
