import type { Context, Hono } from 'hono';
import { EXTENDED_CREDENTIALS_PREFIX, IAM_INFO_PATH } from '../../imds/protocol.js';
import { formatCredentialsDocument } from '../../imds/credentials.js';
import { accountIdFromIamInfo } from '../../imds/instanceProfile.js';
import type { CachedCredentials } from '../../cache/credentialCache.js';
import type { ProxyServices } from '../context.js';
import { imdsError, imdsText, serviceUnavailable } from '../responses.js';

const UNAVAILABLE = 'no valid credentials cached and upstream IMDS is failing';

/**
 * `iam/security-credentials-extended/`: newer SDKs (Java v2, Rust, Ruby, the newest PHP SDK)
 * ask it first and fall back to the legacy route on 404, the newest PHP SDK after sleeping
 * about a second, in every new process. Real IMDS answers 404 on most instances, so
 * `synthesize` (the default) serves it from the cached legacy credentials plus the AccountId
 * of the instance profile: these SDKs never pay the fallback, and IMDS sees no extra request.
 * `passthrough` forwards it (the metadata route), `off` answers 404 like most of EC2.
 */
export function registerExtendedCredentialRoutes(app: Hono, services: ProxyServices): void {
  const { credentials, metadata, extendedCredentials: mode } = services;
  if (mode === 'passthrough') return;

  const paths = {
    list: [EXTENDED_CREDENTIALS_PREFIX, `${EXTENDED_CREDENTIALS_PREFIX}/`],
    role: [`${EXTENDED_CREDENTIALS_PREFIX}/:role{[^/]+}`, `${EXTENDED_CREDENTIALS_PREFIX}/:role{[^/]+}/`],
  };
  if (mode === 'off') {
    for (const path of [...paths.list, ...paths.role]) app.get(path, () => imdsError(404));
    return;
  }

  // The account never changes for an instance: learned once, from the long-cached iam/info.
  let accountId: string | undefined;
  const learnAccountId = async (): Promise<string | undefined> => {
    if (accountId !== undefined) return accountId;
    try {
      const info = await metadata.get(IAM_INFO_PATH, 'iam_info');
      if (info.status === 200) accountId = accountIdFromIamInfo(info.body);
    } catch {
      // Upstream trouble: answer 404 below, and the SDK uses the legacy route.
    }
    return accountId;
  };
  // One formatted document per fetched credentials, so the hit path copies bytes.
  const bodies = new WeakMap<CachedCredentials, string>();

  const list = async () => {
    const lookup = await credentials.roleList();
    if (lookup.kind === 'unavailable') return serviceUnavailable(UNAVAILABLE, lookup.retryAfterSeconds);
    if (lookup.roles.length === 0) return imdsError(404);
    return imdsText(lookup.body);
  };
  const role = async (c: Context) => {
    const lookup = await credentials.credentials(c.req.param('role') ?? '');
    if (lookup.kind === 'not_found') return imdsError(404);
    if (lookup.kind === 'unavailable') return serviceUnavailable(UNAVAILABLE, lookup.retryAfterSeconds);
    const account = lookup.entry.credentials.accountId ?? (await learnAccountId());
    if (account === undefined) return imdsError(404);
    let body = bodies.get(lookup.entry);
    if (body === undefined) {
      body = formatCredentialsDocument({ ...lookup.entry.credentials, accountId: account }, true);
      bodies.set(lookup.entry, body);
    }
    return imdsText(body);
  };
  for (const path of paths.list) app.get(path, list);
  for (const path of paths.role) app.get(path, role);
}
