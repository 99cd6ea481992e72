import type { Clock } from '../runtime/clock.js';
import { formatCredentialsDocument, type RoleCredentials } from '../imds/credentials.js';
import { formatImdsTime } from '../imds/protocol.js';
import type { Faults } from './faults.js';

/**
 * The credentials document for one role with the document faults applied: not JSON, an
 * error document (200 but no credentials), or credentials whose Expiration already passed.
 * `accountId` set means the security-credentials-extended form.
 */
export function credentialsBody(
  credentials: RoleCredentials,
  role: string,
  faults: Pick<Faults, 'malformedJson' | 'errorDocument' | 'expiredCredentials'>,
  clock: Clock,
  accountId?: string,
): string {
  if (faults.malformedJson) return '{"Code" : "Success", "AccessKeyId" : ';
  if (faults.errorDocument) {
    return `{\n  "Code" : "AssumeRoleUnauthorizedAccess",\n  "Message" : "EC2 cannot assume the role ${role}.",\n  "LastUpdated" : "${formatImdsTime(clock.now())}"\n}`;
  }
  const served = faults.expiredCredentials ? { ...credentials, expiration: clock.now() - 60_000 } : credentials;
  return accountId === undefined
    ? formatCredentialsDocument(served)
    : formatCredentialsDocument({ ...served, accountId }, true);
}
