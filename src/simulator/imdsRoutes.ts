import type { Clock } from '../runtime/clock.js';
import {
  CREDENTIALS_PREFIX,
  EXTENDED_CREDENTIALS_PREFIX,
  IAM_INFO_PATH,
  TOKEN_PATH,
  TOKEN_ROUTE_ALLOW,
  TOKEN_TTL_HEADER,
  formatImdsTime,
  parseTokenTtl,
} from '../imds/protocol.js';
import { credentialsBody } from './credentialsBody.js';
import type { CredentialsIssuer } from './credentialsIssuer.js';
import type { Faults } from './faults.js';
import { findMetadata, type InstanceIdentity, type MetadataLeaf } from './instanceIdentity.js';
import type { TokenStore } from './tokenStore.js';

/** What the simulated IMDS knows; shared by the handler and the control API. */
export interface ImdsModel {
  clock: Clock;
  roles: readonly string[];
  identity: InstanceIdentity;
  metadata: ReadonlyMap<string, MetadataLeaf>;
  issuer: CredentialsIssuer;
  tokens: TokenStore;
  faults: Faults;
  extendedCredentials: boolean;
}

export interface ImdsRequest {
  method: string;
  path: string;
  /** The `X-aws-ec2-metadata-token` header; an array when sent more than once. */
  token: string | string[] | undefined;
  ttl: string | undefined;
  forwardedFor: boolean;
}

export type ImdsAnswer =
  | { kind: 'text'; status: 200; body: string; headers?: Record<string, string> }
  | { kind: 'error'; status: number; headers?: Record<string, string> }
  /** A credentials document: the wire faults (slow body, reset mid-body) apply to these. */
  | { kind: 'credentials'; body: string };

const fail = (status: number, headers?: Record<string, string>): ImdsAnswer =>
  headers === undefined ? { kind: 'error', status } : { kind: 'error', status, headers };
const ok = (body: string, headers?: Record<string, string>): ImdsAnswer =>
  headers === undefined ? { kind: 'text', status: 200, body } : { kind: 'text', status: 200, body, headers };

/** What IMDS answers a request, once it is admitted (throttling and resets happen before). */
export function answerImdsRequest(model: ImdsModel, req: ImdsRequest): ImdsAnswer {
  if (req.path === TOKEN_PATH) return answerTokenRequest(model, req);
  if (!req.path.startsWith('/latest/')) return fail(404);
  if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405, { allow: 'GET, HEAD' });

  const { faults } = model;
  const v2Available = faults.imdsV1Only === 0;
  if (req.token !== undefined) {
    // A token IMDS cannot honour is a 401 always, even where tokenless requests are served.
    const valid = typeof req.token === 'string' && model.tokens.verify(req.token) === 'valid';
    if (!valid || faults.tokenRejectStorm || !v2Available) return fail(401);
  } else if (faults.httpTokens === 'required' && v2Available) {
    return fail(401);
  }
  return answerMetadata(model, req.path);
}

function answerTokenRequest(model: ImdsModel, req: ImdsRequest): ImdsAnswer {
  if (req.method === 'OPTIONS') return ok('', { allow: TOKEN_ROUTE_ALLOW });
  if (req.method !== 'PUT') return fail(405, { allow: TOKEN_ROUTE_ALLOW });
  if (model.faults.imdsV1Only !== 0) return fail(model.faults.imdsV1Only);
  if (req.forwardedFor) return fail(403);
  const ttl = parseTokenTtl(req.ttl);
  if (ttl === undefined) return fail(400);
  return ok(model.tokens.mint(ttl), { [TOKEN_TTL_HEADER]: String(ttl) });
}

function answerMetadata(model: ImdsModel, path: string): ImdsAnswer {
  for (const prefix of [CREDENTIALS_PREFIX, EXTENDED_CREDENTIALS_PREFIX]) {
    if (!path.startsWith(prefix)) continue;
    const rest = path.slice(prefix.length);
    // `security-credentials` is a prefix of `security-credentials-extended`.
    if (rest !== '' && !rest.startsWith('/')) continue;
    const extended = prefix === EXTENDED_CREDENTIALS_PREFIX;
    if (extended && !model.extendedCredentials) return fail(404);
    // The raw path, as IMDS matches it: `my+role` is the role, `my%2Brole` names none.
    const role = rest.replace(/^\/|\/$/g, '');
    // No trailing newline: botocore and the PHP SDK paste the listing into the next URL.
    if (role === '') return ok(model.roles.join('\n'));
    if (!model.roles.includes(role) || model.faults.roleRemoved) return fail(404);
    const credentials = model.issuer.current(role);
    const accountId = extended ? model.identity.accountId : undefined;
    return { kind: 'credentials', body: credentialsBody(credentials, role, model.faults, model.clock, accountId) };
  }
  if (path === IAM_INFO_PATH || path === `${IAM_INFO_PATH}/`) return ok(iamInfo(model));
  const leaf = findMetadata(model.metadata, path.slice('/latest/'.length));
  if (leaf === undefined) return fail(404);
  return ok(leaf.body, { 'content-type': leaf.contentType });
}

function iamInfo({ identity, clock }: ImdsModel): string {
  return [
    '{',
    '  "Code" : "Success",',
    `  "LastUpdated" : "${formatImdsTime(clock.now())}",`,
    `  "InstanceProfileArn" : "arn:aws:iam::${identity.accountId}:instance-profile/${identity.instanceProfileName}",`,
    `  "InstanceProfileId" : "${identity.instanceProfileId}"`,
    '}',
  ].join('\n');
}
