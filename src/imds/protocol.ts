/**
 * The parts of the IMDS wire protocol that the proxy, the simulator and the tests all share.
 * See docs/imds-contract.md (and ../shared/imds-contract.md) for why each detail matters.
 */

export const TOKEN_PATH = '/latest/api/token';
export const TOKEN_HEADER = 'x-aws-ec2-metadata-token';
export const TOKEN_TTL_HEADER = 'x-aws-ec2-metadata-token-ttl-seconds';
export const FORWARDED_FOR_HEADER = 'x-forwarded-for';

export const CREDENTIALS_PREFIX = '/latest/meta-data/iam/security-credentials';
export const EXTENDED_CREDENTIALS_PREFIX = '/latest/meta-data/iam/security-credentials-extended';
export const IAM_INFO_PATH = '/latest/meta-data/iam/info';

export const MIN_TOKEN_TTL_SECONDS = 1;
export const MAX_TOKEN_TTL_SECONDS = 21600;

/** Headers every IMDS answer carries. */
export const SERVER_HEADER_VALUE = 'EC2ws';
export const TEXT_PLAIN = 'text/plain';

export const TOKEN_ROUTE_ALLOW = 'OPTIONS, PUT';

/** IAM role names: 1..64 characters of [\w+=,.@-], none of which needs escaping in a path. */
const ROLE_NAME = /^[\w+=,.@-]{1,64}$/;

export function isRoleName(name: string): boolean {
  return ROLE_NAME.test(name);
}

/**
 * Parses the TTL header of a token PUT. IMDS accepts only a plain decimal integer in
 * 1..21600: `abc`, `1e3`, `1.5`, `+5`, ` 5` and the empty string are all 400s.
 * Returns the TTL in seconds, or undefined when the value is not acceptable.
 */
export function parseTokenTtl(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined) return undefined;
  if (!/^[0-9]{1,6}$/.test(value)) return undefined;
  const ttl = Number(value);
  if (ttl < MIN_TOKEN_TTL_SECONDS || ttl > MAX_TOKEN_TTL_SECONDS) return undefined;
  return ttl;
}

/**
 * IMDS times are UTC with second precision and a literal `Z`: botocore parses them with
 * exactly `%Y-%m-%dT%H:%M:%SZ`, so `.000Z` from toISOString() would break it.
 */
export function formatImdsTime(epochMs: number): string {
  return new Date(epochMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Parses an IMDS timestamp (or any ISO-8601 instant). Returns epoch ms or undefined. */
export function parseImdsTime(value: unknown): number | undefined {
  if (typeof value !== 'string' || value.length === 0) return undefined;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : undefined;
}
