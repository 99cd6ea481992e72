import { randomBytes } from 'node:crypto';
import type { RoleCredentials } from '../../src/imds/credentials.js';

let serial = 0;

/** Well-formed throwaway credentials; secrets random per call so no test can depend on them. */
export function makeCredentials(expiration: number, lastUpdated = expiration - 6 * 3600_000): RoleCredentials {
  serial++;
  return {
    accessKeyId: `ASIATEST${String(serial).padStart(12, '0')}`,
    secretAccessKey: randomBytes(30).toString('base64'),
    token: randomBytes(96).toString('base64'),
    expiration: Math.floor(expiration / 1000) * 1000,
    lastUpdated: Math.floor(lastUpdated / 1000) * 1000,
    type: 'AWS-HMAC',
  };
}
