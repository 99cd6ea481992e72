import { formatImdsTime, parseImdsTime } from './protocol.js';

/** One role's credentials, as the proxy holds them. Times are epoch milliseconds. */
export interface RoleCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly token: string;
  readonly expiration: number;
  readonly lastUpdated: number;
  readonly type: string;
  /** Present on the extended route and in container-credential answers. */
  readonly accountId?: string;
}

export type CredentialsDocumentResult =
  | { kind: 'credentials'; credentials: RoleCredentials }
  /** IMDS answers 200 with `Code` other than `Success` when it cannot assume the role. */
  | { kind: 'error-document'; code: string }
  | { kind: 'invalid'; reason: string };

/**
 * Reads a credentials document as IMDS serves it. Never returns a secret in `reason` or
 * `code`: those strings reach logs.
 */
export function parseCredentialsDocument(body: string): CredentialsDocumentResult {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    return { kind: 'invalid', reason: 'body is not JSON' };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    return { kind: 'invalid', reason: 'body is not a JSON object' };
  }
  const d = doc as Record<string, unknown>;
  if (d.Code !== 'Success') {
    const code = typeof d.Code === 'string' ? d.Code.slice(0, 64) : 'missing';
    return { kind: 'error-document', code: /^[A-Za-z0-9_.-]*$/.test(code) ? code : 'unprintable' };
  }
  for (const field of ['AccessKeyId', 'SecretAccessKey', 'Token'] as const) {
    if (typeof d[field] !== 'string' || (d[field] as string).length === 0) {
      return { kind: 'invalid', reason: `${field} missing or not a string` };
    }
  }
  const expiration = parseImdsTime(d.Expiration);
  if (expiration === undefined) return { kind: 'invalid', reason: 'Expiration missing or unparseable' };
  const lastUpdated = parseImdsTime(d.LastUpdated) ?? Number.NaN;
  const credentials: RoleCredentials = {
    accessKeyId: d.AccessKeyId as string,
    secretAccessKey: d.SecretAccessKey as string,
    token: d.Token as string,
    expiration,
    lastUpdated,
    type: typeof d.Type === 'string' ? d.Type : 'AWS-HMAC',
    ...(typeof d.AccountId === 'string' ? { accountId: d.AccountId } : {}),
  };
  return { kind: 'credentials', credentials };
}

/**
 * Writes credentials in IMDS's exact layout: two-space indent, ` : ` separators, fields in
 * IMDS's order, second-precision UTC times. `extended` adds `AccountId` as the
 * security-credentials-extended route does.
 */
export function formatCredentialsDocument(c: RoleCredentials, extended = false): string {
  const lastUpdated = Number.isFinite(c.lastUpdated) ? c.lastUpdated : c.expiration;
  const fields: [string, string][] = [
    ['Code', 'Success'],
    ['LastUpdated', formatImdsTime(lastUpdated)],
    ['Type', c.type],
    ['AccessKeyId', c.accessKeyId],
    ['SecretAccessKey', c.secretAccessKey],
    ['Token', c.token],
    ['Expiration', formatImdsTime(c.expiration)],
  ];
  if (extended && c.accountId !== undefined) fields.push(['AccountId', c.accountId]);
  return `{\n${fields.map(([k, v]) => `  ${JSON.stringify(k)} : ${JSON.stringify(v)}`).join(',\n')}\n}`;
}

/** Two documents name the same credentials when key and token agree: rotation changes both. */
export function sameCredentials(a: RoleCredentials, b: RoleCredentials): boolean {
  return a.accessKeyId === b.accessKeyId && a.token === b.token && a.expiration === b.expiration;
}
