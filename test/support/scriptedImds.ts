import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { ManualClock } from '../../src/runtime/clock.js';
import { formatCredentialsDocument, type RoleCredentials } from '../../src/imds/credentials.js';
import { CREDENTIALS_PREFIX, TOKEN_HEADER, TOKEN_PATH, TOKEN_TTL_HEADER } from '../../src/imds/protocol.js';
import type { RouteLabel, UpstreamOutcome } from '../../src/metrics/recorder.js';
import { UpstreamError } from '../../src/upstream/errors.js';
import type { HttpRequestOptions, UpstreamResponse } from '../../src/upstream/httpRequest.js';

const HOUR = 3600_000;

/** One-shot misbehaviours, each applied to the next request(s) on its route. */
export type FaultKind =
  | 'timeout'
  | 'reset'
  | 'throttle'
  | 'server_error'
  | 'unauthorized'
  | 'listing_404'
  | 'malformed_json'
  | 'error_document'
  | 'expired_document';
export type FaultRoute = 'token' | 'credentials_list' | 'credentials' | 'any';

export interface Exchange {
  route: RouteLabel;
  /** What the proxy must conclude from this answer: the outcome its metrics must show. */
  outcome: UpstreamOutcome;
  /** Monotonic time of the exchange. */
  at: number;
  /** The role whose credentials were asked for, on the credentials route. */
  role?: string;
  /** Answered as it was because of a queued fault (not IMDS's ordinary rules). */
  faulted: boolean;
}

/** What IMDS said that changes what the proxy holds; the model test follows these. */
export type Announcement =
  | { kind: 'listing'; roles: readonly string[] }
  | { kind: 'credentials'; role: string; credentials: RoleCredentials };

type Answer = { status: number; body: string; headers?: Record<string, string> } | 'timeout' | 'reset';

/**
 * An IMDS whose every answer a test scripts: roles, rotations, IMDSv1-only mode, tokens
 * required or not, restarts that forget tokens, and queued one-shot faults. Each request it
 * receives is logged with the outcome the proxy must conclude from it. Usable in memory (as
 * the ImdsClient's transport, for thousands of model-based runs) or over loopback HTTP.
 */
export class ScriptedImds {
  roles: string[];
  v1Only: 0 | 403 | 404 | 405 = 0;
  tokensRequired = true;
  readonly exchanges: Exchange[] = [];
  onAnnounce: (a: Announcement) => void = () => {};
  private readonly current = new Map<string, RoleCredentials>();
  /** Monotonic time at which the current credentials of each role were first served. */
  readonly issuedAt = new Map<string, number>();
  private readonly tokens = new Map<string, number>();
  private readonly faults: { kind: FaultKind; route: FaultRoute; left: number }[] = [];
  private serial = 0;

  constructor(
    private readonly clock: ManualClock,
    roles: string[],
    /** The proxy's safety margin: credentials closer to expiry than this are unusable to it. */
    private readonly safetyMarginMs: number,
    public lifetimeMs = 6 * HOUR,
  ) {
    this.roles = roles;
  }

  /** New credentials for every role from now on (IMDS rotates them about hourly). */
  rotate(): void {
    this.current.clear();
  }

  /** Forgets every token, as a restarted IMDS does. */
  restart(): void {
    this.tokens.clear();
  }

  fault(kind: FaultKind, route: FaultRoute, count: number): void {
    this.faults.push({ kind, route, left: count });
  }

  credentialsOf(role: string): RoleCredentials {
    let c = this.current.get(role);
    // IMDS makes new credentials available well before the old ones expire.
    if (c === undefined || c.expiration - this.clock.now() < 10 * 60_000) {
      this.serial++;
      const now = this.clock.now();
      c = {
        accessKeyId: `ASIASCRIPTED${String(this.serial).padStart(8, '0')}`,
        secretAccessKey: randomBytes(20).toString('base64'),
        token: randomBytes(40).toString('base64'),
        expiration: Math.floor((now + this.lifetimeMs) / 1000) * 1000,
        lastUpdated: Math.floor(now / 1000) * 1000,
        type: 'AWS-HMAC',
      };
      this.current.set(role, c);
      this.issuedAt.set(role, this.clock.monotonic());
    }
    return c;
  }

  /** The ImdsClient transport: the exchange in memory. */
  readonly transport = async (options: HttpRequestOptions): Promise<UpstreamResponse> => {
    const path = new URL(options.url).pathname;
    const answer = this.answer(options.method, path, options.headers ?? {});
    if (answer === 'timeout') throw new UpstreamError('timeout', `no complete answer within ${options.timeoutMs} ms`);
    if (answer === 'reset') throw new UpstreamError('network_error', 'connection failed (ECONNRESET)');
    return {
      status: answer.status,
      body: answer.body,
      contentType: 'text/plain',
      tokenTtl: answer.headers?.[TOKEN_TTL_HEADER],
    };
  };

  /** The same upstream on loopback HTTP, for tests that want real sockets. */
  async listen(): Promise<{ url: string; close(): Promise<void> }> {
    const server: Server = createServer((req, res) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
      const answer = this.answer(req.method === 'PUT' ? 'PUT' : 'GET', (req.url ?? '/').split('?')[0]!, headers);
      if (answer === 'reset') return req.socket.destroy();
      // A timeout: never answer; the proxy's own timeout ends the exchange.
      if (answer === 'timeout') return;
      res.writeHead(answer.status, { 'content-type': 'text/plain', ...answer.headers });
      res.end(answer.body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    return {
      url: `http://127.0.0.1:${port}`,
      close: () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    };
  }

  private takeFault(route: RouteLabel): FaultKind | undefined {
    const i = this.faults.findIndex((f) => f.route === 'any' || f.route === route);
    if (i < 0) return undefined;
    const f = this.faults[i]!;
    if (--f.left <= 0) this.faults.splice(i, 1);
    return f.kind;
  }

  private log(route: RouteLabel, outcome: UpstreamOutcome, faulted = false, role?: string): void {
    this.exchanges.push({ route, outcome, at: this.clock.monotonic(), faulted, ...(role !== undefined ? { role } : {}) });
  }

  private answer(method: string, path: string, headers: Record<string, string>): Answer {
    if (path === TOKEN_PATH && method === 'PUT') return this.answerToken(headers);
    if (path === `${CREDENTIALS_PREFIX}/`) return this.answerGet('credentials_list', headers, (fault) => this.listing(fault));
    if (path.startsWith(`${CREDENTIALS_PREFIX}/`)) {
      const role = path.slice(CREDENTIALS_PREFIX.length + 1);
      return this.answerGet('credentials', headers, (fault) => this.document(role, fault));
    }
    this.log('other', 'success');
    return { status: 404, body: '' };
  }

  private answerToken(headers: Record<string, string>): Answer {
    const fault = this.takeFault('token');
    const common = this.common('token', fault);
    if (common !== undefined) return common;
    if (this.v1Only !== 0) {
      this.log('token', 'success');
      return { status: this.v1Only, body: '' };
    }
    const ttl = Number(headers[TOKEN_TTL_HEADER] ?? '21600');
    const token = `tok-${randomBytes(6).toString('hex')}`;
    this.tokens.set(token, this.clock.monotonic() + ttl * 1000);
    this.log('token', 'success');
    return { status: 200, body: token, headers: { [TOKEN_TTL_HEADER]: String(ttl) } };
  }

  /** Faults every route shares; undefined when the request goes on to be answered. */
  private common(route: RouteLabel, fault: FaultKind | undefined): Answer | undefined {
    switch (fault) {
      case 'timeout':
        this.log(route, 'timeout', true);
        return 'timeout';
      case 'reset':
        this.log(route, 'network_error', true);
        return 'reset';
      case 'throttle':
        this.log(route, 'throttled', true);
        return { status: 429, body: '' };
      case 'server_error':
        this.log(route, 'http_error', true);
        return { status: 500, body: '' };
      case 'unauthorized':
        this.log(route, 'http_error', true);
        return { status: 401, body: '' };
      default:
        return undefined;
    }
  }

  private answerGet(route: RouteLabel, headers: Record<string, string>, body: (fault: FaultKind | undefined) => Answer): Answer {
    const fault = this.takeFault(route);
    const common = this.common(route, fault);
    if (common !== undefined) return common;
    const token = headers[TOKEN_HEADER];
    const tokenValid = token !== undefined && (this.tokens.get(token) ?? 0) > this.clock.monotonic();
    // As IMDS: a token it cannot honour is a 401 always; none is a 401 when tokens are required.
    if (token !== undefined ? !tokenValid || this.v1Only !== 0 : this.tokensRequired && this.v1Only === 0) {
      this.log(route, 'http_error');
      return { status: 401, body: '' };
    }
    return body(fault);
  }

  private listing(fault: FaultKind | undefined): Answer {
    const roles = fault === 'listing_404' ? [] : [...this.roles];
    this.log('credentials_list', 'success', fault === 'listing_404');
    this.onAnnounce({ kind: 'listing', roles });
    return roles.length === 0 ? { status: 404, body: '' } : { status: 200, body: roles.join('\n') };
  }

  private document(role: string, fault: FaultKind | undefined): Answer {
    if (!this.roles.includes(role)) {
      this.log('credentials', 'http_error', false, role);
      return { status: 404, body: '' };
    }
    if (fault === 'malformed_json') {
      this.log('credentials', 'invalid_response', true, role);
      return { status: 200, body: '{"Code" : "Success", "AccessKeyId" : "ASIA' };
    }
    if (fault === 'error_document') {
      this.log('credentials', 'invalid_response', true, role);
      return { status: 200, body: '{\n  "Code" : "AssumeRoleUnauthorizedAccess",\n  "Message" : "EC2 cannot assume the role.",\n  "LastUpdated" : "2026-11-28T12:00:00Z"\n}' };
    }
    const current = this.credentialsOf(role);
    if (fault === 'expired_document') {
      this.log('credentials', 'invalid_response', true, role);
      return { status: 200, body: formatCredentialsDocument({ ...current, expiration: Math.floor((this.clock.now() - 60_000) / 1000) * 1000 }) };
    }
    const usable = current.expiration - this.safetyMarginMs > this.clock.now();
    this.log('credentials', usable ? 'success' : 'invalid_response', false, role);
    if (usable) this.onAnnounce({ kind: 'credentials', role, credentials: current });
    return { status: 200, body: formatCredentialsDocument(current) };
  }
}
