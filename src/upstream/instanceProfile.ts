import { CREDENTIALS_PREFIX } from '../imds/protocol.js';
import { parseCredentialsDocument, type RoleCredentials } from '../imds/credentials.js';
import { UpstreamError } from './errors.js';
import type { ImdsClient } from './imdsClient.js';

/** IAM role names: 1..64 characters of [\w+=,.@-]. Anything else in the listing is not a role. */
const ROLE_NAME = /^[\w+=,.@-]{1,64}$/;

/**
 * The role(s) of the instance profile. An instance with no profile answers 404: that is an
 * answer (no roles), not a failure.
 */
export async function fetchRoleNames(client: ImdsClient): Promise<string[]> {
  const response = await client.get(`${CREDENTIALS_PREFIX}/`, 'credentials_list');
  if (response.status === 404) return [];
  if (response.status !== 200) {
    throw new UpstreamError('http_error', `role listing answered ${response.status}`, response.status);
  }
  const names = response.body
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
  if (!names.every((name) => ROLE_NAME.test(name))) {
    throw new UpstreamError('invalid_response', 'role listing holds something that is not a role name');
  }
  return names;
}

/**
 * One role's credentials. An error document (`Code` other than `Success`) and a body that
 * does not parse are invalid responses: never credentials.
 */
export async function fetchRoleCredentials(client: ImdsClient, role: string): Promise<RoleCredentials> {
  const response = await client.get(`${CREDENTIALS_PREFIX}/${encodeURIComponent(role)}`, 'credentials');
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
  return parsed.credentials;
}
