/**
 * What can go wrong with IMDS, switchable at start (flags) and at runtime (control API).
 */
export interface Faults {
  /** Added before every answer. */
  latencyMs: number;
  /** Fraction of requests (0..1) answered 500. */
  errorRate: number;
  /** Every connection is reset: IMDS unreachable. */
  down: boolean;
  /** Credentials served already expired, as IMDS has done during incidents. */
  expiredCredentials: boolean;
  /** 200 with `Code` other than `Success`. */
  errorDocument: boolean;
  /** The credentials body is not JSON. */
  malformedJson: boolean;
  /** The role is gone: its credentials path answers 404 (the listing still names it). */
  roleRemoved: boolean;
  /** Headers at once, then the credentials body a byte every this many ms. */
  slowBodyMs: number;
  /** Headers and half the credentials body, then the connection is reset. */
  resetMidBody: boolean;
  /** Every token-bearing request answered 401, as after an IMDS restart. */
  tokenRejectStorm: boolean;
  httpTokens: 'required' | 'optional';
  /** IMDSv1-only: the token PUT answers this status (403, 404 or 405); 0 = IMDSv2 available. */
  imdsV1Only: 0 | 403 | 404 | 405;
}

export const NO_FAULTS: Faults = {
  latencyMs: 0,
  errorRate: 0,
  down: false,
  expiredCredentials: false,
  errorDocument: false,
  malformedJson: false,
  roleRemoved: false,
  slowBodyMs: 0,
  resetMidBody: false,
  tokenRejectStorm: false,
  httpTokens: 'required',
  imdsV1Only: 0,
};

const BOOLEAN_FAULTS = ['down', 'expiredCredentials', 'errorDocument', 'malformedJson', 'roleRemoved', 'resetMidBody', 'tokenRejectStorm'] as const;

/**
 * Checks a JSON patch of faults. Returns the patch, or a one-line reason naming the field.
 */
export function validateFaultsPatch(input: unknown): Partial<Faults> | string {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return 'expected a JSON object of faults';
  const patch: Partial<Faults> = {};
  for (const [key, value] of Object.entries(input as Record<string, unknown>)) {
    const bad = (expected: string) => `${key}: expected ${expected}, got ${JSON.stringify(value)}`;
    if ((BOOLEAN_FAULTS as readonly string[]).includes(key)) {
      if (typeof value !== 'boolean') return bad('true or false');
      (patch as Record<string, unknown>)[key] = value;
    } else if (key === 'latencyMs' || key === 'slowBodyMs') {
      if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 600_000) return bad('whole milliseconds 0..600000');
      patch[key] = value as number;
    } else if (key === 'errorRate') {
      if (typeof value !== 'number' || !(value >= 0 && value <= 1)) return bad('a number from 0 to 1');
      patch.errorRate = value;
    } else if (key === 'httpTokens') {
      if (value !== 'required' && value !== 'optional') return bad('"required" or "optional"');
      patch.httpTokens = value;
    } else if (key === 'imdsV1Only') {
      if (value !== 0 && value !== 403 && value !== 404 && value !== 405) return bad('0, 403, 404 or 405');
      patch.imdsV1Only = value;
    } else {
      return `unknown fault "${key}" (known: ${Object.keys(NO_FAULTS).join(', ')})`;
    }
  }
  return patch;
}
