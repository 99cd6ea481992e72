import type { CachedCredentials, CredentialCache, RoleListing } from '../../cache/credentialCache.js';
import { SERVER_HEADER_VALUE, TEXT_PLAIN } from '../../imds/protocol.js';
import type { ProxyServices } from '../context.js';
import { errorAnswer, textAnswer, unavailableAnswer, type Answer } from '../responses.js';

/** What the proxy says when it has nothing valid cached and upstream is failing. */
export const CREDENTIALS_UNAVAILABLE = 'no valid credentials cached and upstream IMDS is failing';

const NOT_FOUND = errorAnswer(404);

/**
 * The role listing, from the credential cache: served with and without the trailing slash
 * (real IMDS redirects the slashless form; answering both serves clients that do not
 * follow redirects), for the legacy and the extended route alike. Cached: answered at once,
 * without a promise (one of a fresh SDK process's three requests).
 */
export function roleListAnswer(credentials: CredentialCache): Answer | Promise<Answer> {
  const cached = credentials.serveCachedRoleList();
  if (cached !== undefined) return listingAnswer(cached);
  return credentials.roleList().then((lookup) =>
    lookup.kind === 'unavailable' ? unavailableAnswer(CREDENTIALS_UNAVAILABLE, lookup.retryAfterSeconds) : listingAnswer(lookup),
  );
}

/** The listing changes about never: one answer per listing, not one per request. */
const listingAnswers = new WeakMap<RoleListing, Answer>();
function listingAnswer(listing: RoleListing): Answer {
  if (listing.roles.length === 0) return NOT_FOUND;
  let answer = listingAnswers.get(listing);
  if (answer === undefined) {
    answer = textAnswer(listing.body);
    listingAnswers.set(listing, answer);
  }
  return answer;
}

/** The cached document as it is: formatted once per fetch, answered by one object per fetch. */
const documentAnswers = new WeakMap<CachedCredentials, Answer>();
function documentAnswer(entry: CachedCredentials): Answer {
  let answer = documentAnswers.get(entry);
  if (answer === undefined) {
    answer = { status: 200, headers: { 'content-type': TEXT_PLAIN, server: SERVER_HEADER_VALUE, 'content-length': entry.bodyLength }, body: entry.body };
    documentAnswers.set(entry, answer);
  }
  return answer;
}

/**
 * A role's credentials. Cached and servable: answered at once, without a promise (most
 * requests on a busy host); otherwise after the cache's fetch, or 404 / 503.
 */
export function credentialsRoute({ credentials }: Pick<ProxyServices, 'credentials'>): (role: string) => Answer | Promise<Answer> {
  return (role) => {
    const cached = credentials.serveCached(role);
    if (cached !== undefined) return documentAnswer(cached);
    return credentials.lookup(role).then((lookup) => {
      if (lookup.kind === 'found') return documentAnswer(lookup.entry);
      if (lookup.kind === 'not_found') return NOT_FOUND;
      return unavailableAnswer(CREDENTIALS_UNAVAILABLE, lookup.retryAfterSeconds);
    });
  };
}
