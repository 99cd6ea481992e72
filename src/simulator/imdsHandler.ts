import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../clock.js';
import { formatCredentialsDocument } from '../imds/credentials.js';
import {
  CREDENTIALS_PREFIX,
  EXTENDED_CREDENTIALS_PREFIX,
  FORWARDED_FOR_HEADER,
  IAM_INFO_PATH,
  SERVER_HEADER_VALUE,
  TOKEN_HEADER,
  TOKEN_PATH,
  TOKEN_ROUTE_ALLOW,
  TOKEN_TTL_HEADER,
  formatImdsTime,
  parseTokenTtl,
} from '../imds/protocol.js';
import type { RouteLabel } from '../metrics/recorder.js';
import { routeLabelOf } from '../server/routeLabel.js';
import type { ServedCounters, SimulatorOutcome } from './counters.js';
import type { CredentialsIssuer } from './credentialsIssuer.js';
import type { Faults } from './faults.js';
import { staticMetadata, type InstanceIdentity } from './instanceIdentity.js';
import type { TokenBucket } from './tokenBucket.js';

export interface SimulatorState {
  clock: Clock;
  roles: readonly string[];
  identity: InstanceIdentity;
  issuer: CredentialsIssuer;
  faults: Faults;
  counters: ServedCounters;
  bucket: TokenBucket | undefined;
  throttleMode: 'drop' | '429';
  extendedCredentials: boolean;
  /** Requests held without an answer (throttle mode drop); destroyed on close. */
  held: Set<IncomingMessage>;
}

/** Tokens the simulator issued; bounded, since only a simulator needs to remember them. */
const MAX_TOKENS = 100_000;

const STATUS_OUTCOME: Record<number, SimulatorOutcome> = {
  200: 'ok',
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  429: 'throttled',
  500: 'error',
};

/**
 * A simulated IMDS on plain node:http, deliberately: faults live on the wire (requests that
 * never get an answer, connections reset mid-body, bodies that dribble), which a framework
 * built around complete Request/Response objects cannot express.
 */
export function createImdsHandler(state: SimulatorState): (req: IncomingMessage, res: ServerResponse) => void {
  const tokens = new Map<string, number>();
  const metadata = staticMetadata(state.identity, formatImdsTime(state.clock.now()));

  const reply = (res: ServerResponse, route: RouteLabel, status: number, body: string, headers: Record<string, string> = {}) => {
    state.counters.count(route, STATUS_OUTCOME[status] ?? 'error');
    const isError = status >= 400;
    res.writeHead(status, {
      'content-type': isError ? 'text/html' : 'text/plain',
      server: SERVER_HEADER_VALUE,
      'content-length': String(Buffer.byteLength(body)),
      ...headers,
    });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  };
  const error = (res: ServerResponse, route: RouteLabel, status: number, headers?: Record<string, string>) =>
    reply(res, route, status, `<html><body><h1>${status}</h1></body></html>\n`, headers);

  const mintToken = (ttlSeconds: number): string => {
    const now = state.clock.now();
    if (tokens.size >= MAX_TOKENS) {
      for (const [t, expiresAt] of tokens) if (expiresAt <= now) tokens.delete(t);
      while (tokens.size >= MAX_TOKENS) tokens.delete(tokens.keys().next().value as string);
    }
    const token = randomBytes(42).toString('base64url');
    tokens.set(token, now + ttlSeconds * 1000);
    return token;
  };

  const credentialsBody = (role: string): string => {
    const { faults, clock, issuer } = state;
    if (faults.malformedJson) return '{"Code" : "Success", "AccessKeyId" : ';
    if (faults.errorDocument) {
      return `{\n  "Code" : "AssumeRoleUnauthorizedAccess",\n  "Message" : "EC2 cannot assume the role ${role}.",\n  "LastUpdated" : "${formatImdsTime(clock.now())}"\n}`;
    }
    const c = issuer.current(role);
    const served = faults.expiredCredentials ? { ...c, expiration: clock.now() - 60_000 } : c;
    return formatCredentialsDocument(served);
  };

  const sendCredentials = (res: ServerResponse, route: RouteLabel, body: string) => {
    const { faults } = state;
    if (faults.resetMidBody) {
      state.counters.count(route, 'reset');
      res.writeHead(200, { 'content-type': 'text/plain', server: SERVER_HEADER_VALUE, 'content-length': String(body.length) });
      res.write(body.slice(0, body.length >> 1), () => res.socket?.destroy());
      return;
    }
    if (faults.slowBodyMs > 0) {
      state.counters.count(route, 'ok');
      res.writeHead(200, { 'content-type': 'text/plain', server: SERVER_HEADER_VALUE, 'content-length': String(body.length) });
      let i = 0;
      const timer = setInterval(() => {
        if (res.destroyed || i >= body.length) {
          clearInterval(timer);
          if (!res.destroyed) res.end();
          return;
        }
        res.write(body[i++]);
      }, faults.slowBodyMs);
      res.on('close', () => clearInterval(timer));
      return;
    }
    reply(res, route, 200, body);
  };

  const serve = (req: IncomingMessage, res: ServerResponse, path: string, route: RouteLabel) => {
    const { faults, clock, roles } = state;
    if (path === TOKEN_PATH) {
      if (req.method === 'OPTIONS') return reply(res, route, 200, '', { allow: TOKEN_ROUTE_ALLOW });
      if (req.method !== 'PUT') return error(res, route, 405, { allow: TOKEN_ROUTE_ALLOW });
      if (faults.imdsV1Only !== 0) return error(res, route, faults.imdsV1Only);
      if (req.headers[FORWARDED_FOR_HEADER] !== undefined) return error(res, route, 403);
      const ttl = parseTokenTtl(req.headers[TOKEN_TTL_HEADER] as string | undefined);
      if (ttl === undefined) return error(res, route, 400);
      return reply(res, route, 200, mintToken(ttl), { [TOKEN_TTL_HEADER]: String(ttl) });
    }
    if (!path.startsWith('/latest/')) return error(res, route, 404);
    if (req.method !== 'GET' && req.method !== 'HEAD') return error(res, route, 405, { allow: 'GET, HEAD' });

    const token = req.headers[TOKEN_HEADER];
    if (token !== undefined) {
      const expiresAt = typeof token === 'string' ? tokens.get(token) : undefined;
      if (faults.tokenRejectStorm || faults.imdsV1Only !== 0 || expiresAt === undefined || expiresAt <= clock.now()) {
        return error(res, route, 401);
      }
    } else if (faults.httpTokens === 'required' && faults.imdsV1Only === 0) {
      return error(res, route, 401);
    }

    for (const prefix of [CREDENTIALS_PREFIX, EXTENDED_CREDENTIALS_PREFIX]) {
      if (!path.startsWith(prefix)) continue;
      const rest = path.slice(prefix.length);
      if (rest !== '' && !rest.startsWith('/')) break;
      if (prefix === EXTENDED_CREDENTIALS_PREFIX && !state.extendedCredentials) return error(res, route, 404);
      const name = decodeURIComponent(rest.replace(/^\/|\/$/g, ''));
      if (name === '') return reply(res, route, 200, roles.join('\n'));
      if (!roles.includes(name) || faults.roleRemoved) return error(res, route, 404);
      if (prefix === CREDENTIALS_PREFIX) return sendCredentials(res, route, credentialsBody(name));
      const c = state.issuer.current(name);
      return sendCredentials(res, route, formatCredentialsDocument({ ...c, accountId: state.identity.accountId }, true));
    }
    if (path === IAM_INFO_PATH || path === `${IAM_INFO_PATH}/`) {
      const { identity } = state;
      return reply(
        res,
        route,
        200,
        `{\n  "Code" : "Success",\n  "LastUpdated" : "${formatImdsTime(clock.now())}",\n  "InstanceProfileArn" : "arn:aws:iam::${identity.accountId}:instance-profile/${identity.instanceProfileName}",\n  "InstanceProfileId" : "${identity.instanceProfileId}"\n}`,
      );
    }
    const leaf = metadata.get(path.slice('/latest/'.length));
    if (leaf !== undefined) return reply(res, route, 200, leaf.body, { 'content-type': leaf.contentType });
    return error(res, route, 404);
  };

  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const route = routeLabelOf(path);
    const { faults, bucket } = state;
    if (faults.down) {
      state.counters.count(route, 'reset');
      req.socket.destroy();
      return;
    }
    if (bucket !== undefined && !bucket.tryTake()) {
      if (state.throttleMode === '429') return error(res, route, 429);
      // IMDS drops what exceeds its allowance: the client hears nothing and times out.
      state.counters.count(route, 'dropped');
      state.held.add(req);
      req.socket.once('close', () => state.held.delete(req));
      return;
    }
    if (faults.errorRate > 0 && Math.random() < faults.errorRate) return error(res, route, 500);
    if (faults.latencyMs > 0) {
      let served = false;
      const timer = setTimeout(() => {
        served = true;
        serve(req, res, path, route);
      }, faults.latencyMs);
      res.on('close', () => {
        clearTimeout(timer);
        // The client gave up during the added latency: still one request, counted once.
        if (!served) state.counters.count(route, 'abandoned');
      });
      return;
    }
    serve(req, res, path, route);
  };
}
