import { randomBytes, randomInt } from 'node:crypto';
import type { Clock } from '../runtime/clock.js';
import type { RoleCredentials } from '../imds/credentials.js';

const KEY_ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/**
 * Credentials as EC2 hands them out: the same credentials until the rotation period has
 * passed, then new ones, each valid for `lifetimeMs` from issue. With the defaults (6 h
 * life, hourly rotation) new credentials exist hours before the old expire, as on EC2.
 */
export class CredentialsIssuer {
  private readonly issued = new Map<string, RoleCredentials>();

  constructor(
    private readonly clock: Clock,
    private readonly lifetimeMs: number,
    private readonly rotationMs: number,
  ) {}

  current(role: string): RoleCredentials {
    const now = this.clock.now();
    const existing = this.issued.get(role);
    if (existing !== undefined && now < existing.lastUpdated + this.rotationMs) return existing;
    return this.issue(role, now);
  }

  /** Forces new credentials for every role now. */
  rotateAll(roles: readonly string[]): void {
    const now = this.clock.now();
    for (const role of roles) this.issue(role, now);
  }

  peek(role: string): RoleCredentials | undefined {
    return this.issued.get(role);
  }

  private issue(role: string, now: number): RoleCredentials {
    const issuedAt = Math.floor(now / 1000) * 1000;
    const credentials: RoleCredentials = {
      accessKeyId: `ASIA${Array.from({ length: 16 }, () => KEY_ID_ALPHABET[randomInt(KEY_ID_ALPHABET.length)]).join('')}`,
      secretAccessKey: randomBytes(30).toString('base64'),
      token: randomBytes(480).toString('base64'),
      expiration: issuedAt + this.lifetimeMs,
      lastUpdated: issuedAt,
      type: 'AWS-HMAC',
    };
    this.issued.set(role, credentials);
    return credentials;
  }
}
