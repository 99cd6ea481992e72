/**
 * How long an answer from IMDS for a forwarded path may be reused. Data fixed for the life
 * of an instance is kept long; data that exists to announce change (spot interruption,
 * scheduled events, lifecycle state) is kept about a second, enough to absorb a burst of
 * identical polls without hiding a notice; user-data is never kept (it may hold secrets and
 * is read rarely). `iam/info` names the instance profile, which can be replaced at any time:
 * it gets the default minute, not the instance-static hours.
 */
export interface MetadataCacheTtls {
  staticMs: number;
  changingMs: number;
  defaultMs: number;
  notFoundMs: number;
}

export const DEFAULT_METADATA_TTLS: MetadataCacheTtls = {
  staticMs: 6 * 3600_000,
  changingMs: 1_000,
  defaultMs: 60_000,
  notFoundMs: 5_000,
};

const STATIC_PATHS = [
  /^\/latest\/meta-data\/(instance-id|ami-id|instance-type|mac|local-ipv4|local-hostname|hostname|ami-launch-index|ami-manifest-path|instance-life-cycle|kernel-id|ramdisk-id|reservation-id)\/?$/,
  /^\/latest\/meta-data\/placement\//,
  /^\/latest\/dynamic\/instance-identity\/(document|signature|pkcs7|rsa2048)\/?$/,
];

const CHANGING_PATHS = [
  /^\/latest\/meta-data\/spot\//,
  /^\/latest\/meta-data\/events\//,
  /^\/latest\/meta-data\/autoscaling\//,
  /^\/latest\/meta-data\/rebalance-recommendation\/?$/,
  /^\/latest\/meta-data\/tags\/instance(\/|$)/,
];

const NEVER_CACHED = [/^\/latest\/user-data\/?$/];

/**
 * Anything that may carry credentials, however the path is spelled (`security-credentials//role`,
 * `identity-credentials/ec2/security-credentials/ec2-instance`): forwarded, never kept, so
 * nothing credential-bearing outlives the credential cache's own rules. A 404 may be kept briefly.
 */
const CREDENTIAL_BEARING = /security-credentials|identity-credentials/i;

/** Milliseconds an answer with `status` for `path` may be served again; 0 means never. */
export function metadataTtlMs(path: string, status: number, ttls: MetadataCacheTtls): number {
  if (NEVER_CACHED.some((re) => re.test(path))) return 0;
  if (status !== 404 && CREDENTIAL_BEARING.test(path)) return 0;
  const changing = CHANGING_PATHS.some((re) => re.test(path));
  if (status === 404) return changing ? Math.min(ttls.changingMs, ttls.notFoundMs) : ttls.notFoundMs;
  if (status !== 200) return 0;
  if (changing) return ttls.changingMs;
  if (STATIC_PATHS.some((re) => re.test(path))) return ttls.staticMs;
  return ttls.defaultMs;
}
