import { IAM_INFO_PATH } from '../../imds/protocol.js';
import { formatCredentialsDocument } from '../../imds/credentials.js';
import { accountIdFromIamInfo } from '../../imds/instanceProfile.js';
import type { CachedCredentials } from '../../cache/credentialCache.js';
import type { ProxyServices } from '../context.js';
import { errorAnswer, textAnswer, unavailableAnswer, type Answer } from '../responses.js';
import { CREDENTIALS_UNAVAILABLE } from './credentials.js';

const NOT_FOUND = errorAnswer(404);

/**
 * `iam/security-credentials-extended/<role>`: `synthesize` serves it from the cached credentials
 * plus the profile's AccountId, so newer SDKs skip their 404 fallback (README); `passthrough`
 * forwards it (the hono app), `off` answers 404. The listing is the legacy route's.
 */
export function extendedCredentialsRoute({ credentials, metadata }: Pick<ProxyServices, 'credentials' | 'metadata'>): (role: string) => Promise<Answer> {
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
  // One formatted document per fetched credentials, so a hit copies bytes.
  const bodies = new WeakMap<CachedCredentials, string>();

  return async (role) => {
    const lookup = await credentials.lookup(role);
    if (lookup.kind === 'not_found') return NOT_FOUND;
    if (lookup.kind === 'unavailable') return unavailableAnswer(CREDENTIALS_UNAVAILABLE, lookup.retryAfterSeconds);
    const account = lookup.entry.credentials.accountId ?? (await learnAccountId());
    if (account === undefined) return NOT_FOUND;
    let body = bodies.get(lookup.entry);
    if (body === undefined) {
      body = formatCredentialsDocument({ ...lookup.entry.credentials, accountId: account }, true);
      bodies.set(lookup.entry, body);
    }
    return textAnswer(body);
  };
}
