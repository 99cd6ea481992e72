import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../runtime/clock.js';
import { MAX_TOKEN_TTL_SECONDS } from '../imds/protocol.js';

/**
 * Session tokens for the proxy's own clients, minted and checked here so a token request never
 * reaches upstream: `base64url(version | expiry | nonce | HMAC-SHA256(key, version | expiry | nonce))`,
 * nothing stored per token (README, Tokens; the key across restarts: tokenKeyFile.ts).
 */

/** HMAC-SHA256 key length. */
export const TOKEN_KEY_BYTES = 32;

const VERSION = 1;
const EXPIRY_BYTES = 8;
const NONCE_BYTES = 12;
const MAC_BYTES = 32;
const PAYLOAD_BYTES = 1 + EXPIRY_BYTES + NONCE_BYTES;
const TOKEN_BYTES = PAYLOAD_BYTES + MAC_BYTES;
/** A token's length in characters: TOKEN_BYTES as base64url without padding. */
const TOKEN_LENGTH = Math.ceil((TOKEN_BYTES * 4) / 3);

export type TokenVerdict = 'valid' | 'invalid' | 'expired';

/**
 * Tokens already proven genuine, with their expiry: an SDK sends the same token on every
 * request, so the hit path pays one Map lookup instead of an HMAC. Bounded and simply
 * emptied when full: losing it costs only a recomputation, never a valid token. Small on
 * purpose: a fresh process uses its token within milliseconds, and 4096 entries kept every
 * minted token alive across young-generation GCs, which led V8 to pretenure short-lived
 * objects node:http allocates per request (about 15 µs of CPU per fresh-process sequence).
 */
const VERIFIED_CACHE_ENTRIES = 256;
/**
 * No token we mint expires later than the longest TTL from now; one that claims to was minted
 * with a leaked key (a forever-token) and is refused. The slack absorbs a wall-clock step back.
 */
const LONGEST_TOKEN_LIFE_MS = (MAX_TOKEN_TTL_SECONDS + 5 * 60) * 1000;
const NONCE_BATCH = 256;
/** TTLs whose latest token is kept for sharing; SDKs all ask for 21600, so a handful is plenty. */
const SHARED_TTLS = 16;
/** Expiries are rounded up to this: requests for one TTL within it share a token. */
const SHARING_WINDOW_MS = 100;

export class ClientTokenAuthority {
  private readonly key: Buffer;
  private readonly verified = new Map<string, number>();
  private nonces = Buffer.alloc(0);
  private nonceOffset = 0;
  /** Per TTL, the last token minted and its expiry: handed to every request in the same second. */
  private readonly shared = new Map<number, { expiresAt: number; token: string }>();

  constructor(
    private readonly clock: Clock,
    key: Buffer = randomBytes(TOKEN_KEY_BYTES),
  ) {
    this.key = key;
  }

  /**
   * A token valid for `ttlSeconds` from now, its expiry rounded up to the next tenth of a
   * second (it outlives its TTL by under 100 ms, never falls short of it). Requests for the
   * same TTL within that tenth get the same token: a token is a capability every local process
   * can have for the asking, so sharing it reveals nothing, and a host of fresh processes costs
   * at most ten HMACs a second instead of one each (README, Tokens).
   */
  mint(ttlSeconds: number): string {
    const expiresAt = Math.ceil((this.clock.now() + ttlSeconds * 1000) / SHARING_WINDOW_MS) * SHARING_WINDOW_MS;
    const shared = this.shared.get(ttlSeconds);
    if (shared !== undefined && shared.expiresAt === expiresAt) return shared.token;
    const token = Buffer.allocUnsafe(TOKEN_BYTES);
    token[0] = VERSION;
    // The 64-bit big-endian expiry as two halves: the same bytes as writeBigUInt64BE, without a BigInt per token.
    token.writeUInt32BE(Math.floor(expiresAt / 2 ** 32), 1);
    token.writeUInt32BE(expiresAt % 2 ** 32, 5);
    this.writeNonce(token, 1 + EXPIRY_BYTES);
    this.mac(token.subarray(0, PAYLOAD_BYTES)).copy(token, PAYLOAD_BYTES);
    const text = token.toString('base64url');
    // A fresh SDK process uses its token at once: known genuine, it costs no second HMAC.
    this.remember(text, expiresAt);
    if (this.shared.size >= SHARED_TTLS) this.shared.clear();
    this.shared.set(ttlSeconds, { expiresAt, token: text });
    return text;
  }

  /** Nonces from the CSPRNG, drawn a batch at a time: one call per token cost as much as the HMAC. */
  private writeNonce(target: Buffer, at: number): void {
    if (this.nonceOffset + NONCE_BYTES > this.nonces.length) {
      this.nonces = randomBytes(NONCE_BYTES * NONCE_BATCH);
      this.nonceOffset = 0;
    }
    this.nonces.copy(target, at, this.nonceOffset, this.nonceOffset + NONCE_BYTES);
    this.nonceOffset += NONCE_BYTES;
  }

  private remember(token: string, expiresAt: number): void {
    if (this.verified.size >= VERIFIED_CACHE_ENTRIES) this.verified.clear();
    this.verified.set(token, expiresAt);
  }

  /** Checks a token's integrity in constant time, then its expiry. */
  verify(token: string): TokenVerdict {
    const known = this.verified.get(token);
    if (known !== undefined) return this.clock.now() < known ? 'valid' : 'expired';
    if (token.length !== TOKEN_LENGTH) return 'invalid';
    const raw = Buffer.from(token, 'base64url');
    // Buffer.from silently skips characters outside the alphabet; re-encoding catches them.
    if (raw.length !== TOKEN_BYTES || raw.toString('base64url') !== token) return 'invalid';
    if (raw.readUInt8(0) !== VERSION) return 'invalid';
    const expected = this.mac(raw.subarray(0, PAYLOAD_BYTES));
    if (!timingSafeEqual(expected, raw.subarray(PAYLOAD_BYTES))) return 'invalid';
    const expiresAt = Number(raw.readBigUInt64BE(1));
    if (expiresAt > this.clock.now() + LONGEST_TOKEN_LIFE_MS) return 'invalid';
    this.remember(token, expiresAt);
    return this.clock.now() < expiresAt ? 'valid' : 'expired';
  }

  private mac(payload: Buffer): Buffer {
    return createHmac('sha256', this.key).update(payload).digest();
  }
}
