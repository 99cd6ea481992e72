import { CREDENTIALS_PREFIX, isRoleName } from '../imds/protocol.js';
import { parseCredentialsDocument, type RoleCredentials } from '../imds/credentials.js';
import { UpstreamError } from './errors.js';
import type { ImdsClient } from './imdsClient.js';

/**
 * The role(s) of the instance profile. An instance with no profile answers 404: that is an
 * answer (no roles), not a failure.
 */
export async function fetchRoleNames(client: ImdsClient): Promise<string[]> {
  let names: string[] = [];
  await client.get(`${CREDENTIALS_PREFIX}/`, 'credentials_list', (response) => {
    if (response.status === 404) return;
    if (response.status !== 200) {
      throw new UpstreamError('http_error', `role listing answered ${response.status}`, response.status);
    }
    names = response.body
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line.length > 0);
    if (!names.every(isRoleName)) {
      throw new UpstreamError('invalid_response', 'role listing holds something that is not a role name');
    }
  });
  return names;
}

/**
 * One role's credentials. An error document (`Code` other than `Success`), a body that does
 * not parse, and credentials `usable` refuses (already expired) are invalid responses: never
 * credentials, and counted as `invalid_response` upstream.
 * The role name goes into the path raw, as SDKs send it: IMDS matches the raw path, so
 * `%2B` for `+` would name no role. isRoleName admits nothing that needs escaping in a path.
 */
export async function fetchRoleCredentials(
  client: ImdsClient,
  role: string,
  usable: (credentials: RoleCredentials) => boolean = () => true,
): Promise<RoleCredentials> {
  if (!isRoleName(role)) throw new UpstreamError('invalid_response', 'not a role name');
  let credentials: RoleCredentials | undefined;
  await client.get(`${CREDENTIALS_PREFIX}/${role}`, 'credentials', (response) => {
    if (response.status !== 200) {
      throw new UpstreamError('http_error', `credentials answered ${response.status}`, response.status);
    }
    const parsed = parseCredentialsDocument(response.body);
    if (parsed.kind === 'error-document') {
      throw new UpstreamError('invalid_response', `credentials error document (Code ${parsed.code})`);
    }
    if (parsed.kind === 'invalid') {
      throw new UpstreamError('invalid_response', `credentials document invalid: ${parsed.reason}`);
    }
    if (!usable(parsed.credentials)) {
      throw new UpstreamError('invalid_response', 'credentials already expired or inside the safety margin');
    }
    credentials = parsed.credentials;
  });
  if (credentials === undefined) throw new UpstreamError('invalid_response', 'no credentials');
  return credentials;
}
