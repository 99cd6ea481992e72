import { randomBytes } from 'node:crypto';
import type { Clock } from '../runtime/clock.js';

export type TokenVerdict = 'valid' | 'invalid' | 'expired';

/**
 * The IMDSv2 session tokens the simulator handed out, with their expiry. Random strings in a
 * map are fine for a simulator (the proxy mints stateless tokens instead). Bounded: when full,
 * expired tokens go first, then the oldest quarter, so a token flood costs memory up to
 * `capacity` and amortised O(1) per mint.
 */
export class TokenStore {
  private readonly expiresAtByToken = new Map<string, number>();

  constructor(
    private readonly clock: Clock,
    private readonly capacity = 100_000,
  ) {}

  mint(ttlSeconds: number): string {
    const now = this.clock.now();
    if (this.expiresAtByToken.size >= this.capacity) this.makeRoom(now);
    const token = randomBytes(42).toString('base64url');
    this.expiresAtByToken.set(token, now + ttlSeconds * 1000);
    return token;
  }

  verify(token: string): TokenVerdict {
    const expiresAt = this.expiresAtByToken.get(token);
    if (expiresAt === undefined) return 'invalid';
    if (expiresAt <= this.clock.now()) {
      this.expiresAtByToken.delete(token);
      return 'expired';
    }
    return 'valid';
  }

  get size(): number {
    return this.expiresAtByToken.size;
  }

  private makeRoom(now: number): void {
    for (const [token, expiresAt] of this.expiresAtByToken) {
      if (expiresAt <= now) this.expiresAtByToken.delete(token);
    }
    // Map order is mint order, so the first keys are the oldest tokens.
    let surplus = this.expiresAtByToken.size - Math.floor(this.capacity * 0.75);
    for (const token of this.expiresAtByToken.keys()) {
      if (surplus-- <= 0) break;
      this.expiresAtByToken.delete(token);
    }
  }
}
