import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { CredentialCache, EMPTY_LISTING_SPAN_MS, EMPTY_LISTINGS_TO_DROP } from '../../src/cache/credentialCache.js';
import { DEFAULT_REFRESH_SETTINGS as S, isServable } from '../../src/cache/refreshPolicy.js';
import type { RoleCredentials } from '../../src/imds/credentials.js';
import { parseCredentialsDocument } from '../../src/imds/credentials.js';
import { silentLogger } from '../../src/runtime/log.js';
import { ImdsClient } from '../../src/upstream/imdsClient.js';
import { fetchRoleCredentials, fetchRoleNames } from '../../src/upstream/instanceProfile.js';
import { RecordingMetrics } from '../support/recordingMetrics.js';
import { ScriptedImds, type FaultKind, type FaultRoute } from '../support/scriptedImds.js';

/**
 * The whole credential state machine, model-based: fast-check drives the REAL CredentialCache,
 * ImdsClient and UpstreamSession (only the HTTP exchange is in memory, through the client's
 * transport option) against a scripted IMDS, through random sequences of client requests,
 * clock advances from seconds to hours, wall-clock steps, rotations, role changes, listing
 * 404s, token-route 403/404/405/401, timeouts, 429s, 5xx, resets, malformed JSON, error
 * documents and already-expired documents. After every step it checks the invariants below.
 * A failure prints fast-check's seed and shrunk command sequence; replay one with
 * MODEL_SEED=<seed> MODEL_PATH=<path> npx vitest run test/cache/credentialModel.property.test.ts
 */

const HOUR = 3600_000;
const ROLE_A = 'app-role';
const ROLE_B = 'ops+deploy=eu,west@team';
const ATTEMPTS = 2;
/**
 * Upstream requests per simulated hour, at most. Cycles: one per max-age (5 min) when
 * healthy, every rotation-retry (~60 s) inside the refresh window, and under failures the
 * backoff keeps attempts >= 30 s apart once at its 60 s cap, after a ramp of ~7 quick ones
 * (empty listings with nothing to serve share the failures' ramp, so alternating the two never
 * restarts it): <= 3600/30 + 7 = 127 cycles. Each cycle: a listing and up to 2 roles. A get()
 * sends per attempt at most a token PUT and a GET, and once a fresh token for a 401; an attempt
 * that PUT twice ends with a fresh token, so the other attempt sends its GET alone, and a
 * second 401 ends the get(): <= 5 requests (PUT, GET 401, PUT, GET 5xx; GET), <= 15 per cycle,
 * <= 127 x 15 = 1905 an hour. A refresh per client request, or a retry loop, blows through it.
 */
const MAX_UPSTREAM_PER_HOUR = 1905;
/**
 * Once IMDS is calm and lists a role, some role is served within this: the longest backoff
 * (an empty listing while nothing is servable is re-checked on it), never max-age.
 */
const SERVED_WITHIN_MS = S.failureBackoffMaxMs + 1_000;
/** After IMDS changes credentials, the newest are served within this (fault-free meanwhile). */
const FRESHNESS_MS = Math.max(S.maxAgeMs * (1 + S.jitter), S.rotationRetryMs * (1 + 2 * S.jitter)) + S.failureBackoffMaxMs + 1_000;

interface Model {
  /** What the cache must hold, from what IMDS announced: role to its newest usable credentials. */
  entries: Map<string, RoleCredentials>;
  /** Roles the cache must list (undefined before the first listing it accepted). */
  roles: readonly string[] | undefined;
  emptyListings: { count: number; firstAt: number } | undefined;
  /** Empty listings IMDS has answered, ever. */
  emptyAnswers: number;
  /** Monotonic time since which IMDS has answered every request normally and nothing changed. */
  calmSince: number;
}

interface Real {
  clock: ManualClock;
  imds: ScriptedImds;
  cache: CredentialCache;
  metrics: RecordingMetrics;
  startedAt: number;
  /** Where the last check left off: failed refreshes counted, exchanges and empty listings seen. */
  mark: { failures: number; exchanges: number; emptyAnswers: number };
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const servable = (c: RoleCredentials | undefined, now: number) => c !== undefined && isServable(c, now, S);
const someServable = (m: Model, now: number) => [...m.entries.values()].some((c) => servable(c, now));

function setup(seed: number, lifetimeMs: number): { model: Model; real: Real } {
  const clock = new ManualClock();
  const metrics = new RecordingMetrics();
  const imds = new ScriptedImds(clock, [ROLE_A], S.safetyMarginMs, lifetimeMs);
  const client = new ImdsClient({
    baseUrl: 'http://imds.invalid',
    timeoutMs: 1_000,
    maxAttempts: ATTEMPTS,
    retryBaseMs: 200,
    retryMaxMs: 2_000,
    clock,
    metrics,
    logger: silentLogger,
    sleep: async () => {},
    random: mulberry32(seed ^ 0x5eed),
    request: imds.transport,
  });
  const cache = new CredentialCache({
    source: { listRoles: () => fetchRoleNames(client), fetchCredentials: (role, usable) => fetchRoleCredentials(client, role, usable) },
    clock,
    settings: S,
    metrics,
    logger: silentLogger,
    random: mulberry32(seed),
  });
  const model: Model = { entries: new Map(), roles: undefined, emptyListings: undefined, emptyAnswers: 0, calmSince: clock.monotonic() };
  // The model follows what IMDS said, applying the cache's stated policy (docs/fault-matrix.md).
  imds.onAnnounce = (a) => {
    if (a.kind === 'credentials') {
      model.entries.set(a.role, a.credentials);
      return;
    }
    if (a.roles.length === 0) {
      model.calmSince = clock.monotonic();
      model.emptyAnswers++;
    }
    if (a.roles.length > 0 || !someServable(model, clock.now())) {
      model.emptyListings = undefined;
      model.roles = a.roles;
      for (const role of [...model.entries.keys()]) if (!a.roles.includes(role)) model.entries.delete(role);
      return;
    }
    model.emptyListings ??= { count: 0, firstAt: clock.monotonic() };
    model.emptyListings.count++;
    if (model.emptyListings.count >= EMPTY_LISTINGS_TO_DROP && clock.monotonic() - model.emptyListings.firstAt >= EMPTY_LISTING_SPAN_MS) {
      model.emptyListings = undefined;
      model.roles = [];
      model.entries.clear();
    }
  };
  return { model, real: { clock, imds, cache, metrics, startedAt: clock.monotonic(), mark: { failures: 0, exchanges: 0, emptyAnswers: 0 } } };
}

/** What the background refresher does: wake at the due time (at most 60 s apart) and refresh. */
async function letTimePass(r: Real, ms: number, afterEachWake: () => void = () => {}): Promise<void> {
  let left = ms;
  while (left > 0) {
    const sleep = Math.min(left, Math.min(60_000, Math.max(50, r.cache.refreshDueInMs)));
    r.clock.advance(sleep);
    left -= sleep;
    await r.cache.refreshIfDue();
    afterEachWake();
  }
}

/** Monotonic time since which IMDS has been calm: no queued fault answered, nothing changed. */
function calmSinceOf(m: Model, r: Real): number {
  let calmSince = m.calmSince;
  for (const e of r.imds.exchanges) if (e.faulted) calmSince = Math.max(calmSince, e.at);
  return calmSince;
}

/**
 * Once IMDS is calm and lists a role, the proxy serves within the backoff bound (seconds), not
 * at max-age: an empty listing or a failure while nothing was servable is re-checked soon.
 */
function checkServedWithinBound(m: Model, r: Real): void {
  if (r.imds.roles.length === 0 || r.clock.monotonic() - calmSinceOf(m, r) < SERVED_WITHIN_MS) return;
  expect(r.cache.isReady(), `serving within ${SERVED_WITHIN_MS} ms of IMDS listing ${r.imds.roles.join(',')}`).toBe(true);
}

const failedRefreshes = (r: Real) => [...r.metrics.counts].filter(([k]) => k.startsWith('refresh:') && k.endsWith(':failure')).reduce((n, [, v]) => n + v, 0);

/** Every invariant, after every step. */
function checkInvariants(m: Model, r: Real): void {
  const now = r.clock.now();
  const mono = r.clock.monotonic();
  // A refresh fails only for a reason: a fault IMDS was told to play, or an empty listing.
  // Token rules (a restart, IMDSv1-only, tokens required again) never fail one.
  const failures = failedRefreshes(r);
  if (failures > r.mark.failures) {
    const explained = r.imds.exchanges.slice(r.mark.exchanges).some((e) => e.faulted) || m.emptyAnswers > r.mark.emptyAnswers;
    expect(explained, 'a refresh failed with no fault and no empty listing to explain it').toBe(true);
  }
  r.mark = { failures, exchanges: r.imds.exchanges.length, emptyAnswers: m.emptyAnswers };
  // The cache holds exactly what IMDS announced, under the stated policy.
  const held = r.cache.snapshot();
  for (const [role, c] of m.entries) {
    if (servable(c, now)) expect(held.entries.get(role)?.credentials.accessKeyId, `holds ${role}`).toBe(c.accessKeyId);
  }
  if (m.roles !== undefined) expect(held.roles, 'roles listed').toEqual(m.roles);
  // /readyz is 200 exactly when some role has servable credentials.
  expect(r.cache.isReady(), 'ready').toBe(someServable(m, now));
  // Newest credentials within max-age plus the backoff after IMDS changed them, when calm.
  // Calm: no queued fault answered, no role change, no empty listing, no wall step. Token
  // rules (IMDS restarts, IMDSv1-only, tokens now required) are not faults: the proxy must
  // get through them within the same request.
  const calmSince = calmSinceOf(m, r);
  checkServedWithinBound(m, r);
  for (const role of r.imds.roles) {
    // Refreshes keep coming on schedule (monotonic max-age), whatever the wall clock did.
    if (mono - calmSince >= FRESHNESS_MS) {
      const lastFetch = r.imds.exchanges.findLast((e) => e.route === 'credentials' && e.role === role && e.outcome === 'success');
      expect(mono - (lastFetch?.at ?? -Infinity), `${role} refreshed within ${FRESHNESS_MS} ms`).toBeLessThanOrEqual(FRESHNESS_MS);
    }
    const since = Math.max(calmSince, r.imds.issuedAt.get(role) ?? calmSince);
    if (mono - since < FRESHNESS_MS) continue;
    const newest = r.imds.credentialsOf(role);
    if (r.imds.issuedAt.get(role)! > since) continue; // just rotated by this very look
    expect(held.entries.get(role)?.credentials.accessKeyId, `fresh ${role}`).toBe(newest.accessKeyId);
  }
  // The metrics' upstream counts, by route and outcome, are what IMDS received and answered.
  const tally = new Map<string, number>();
  for (const e of r.imds.exchanges) tally.set(`upstream:${e.route}:${e.outcome}`, (tally.get(`upstream:${e.route}:${e.outcome}`) ?? 0) + 1);
  const recorded = new Map([...r.metrics.counts].filter(([k]) => k.startsWith('upstream:')));
  expect(recorded, 'upstream metrics').toEqual(tally);
  // Bounded upstream load per simulated hour.
  const perHour = new Map<number, number>();
  for (const e of r.imds.exchanges) {
    const h = Math.floor((e.at - r.startedAt) / HOUR);
    perHour.set(h, (perHour.get(h) ?? 0) + 1);
  }
  for (const [h, n] of perHour) expect(n, `upstream requests in hour ${h}`).toBeLessThanOrEqual(MAX_UPSTREAM_PER_HOUR);
}

/** Marks the upstream as disturbed now: the freshness clock restarts. */
const disturb = (m: Model, r: Real) => (m.calmSince = r.clock.monotonic());

type Cmd = fc.AsyncCommand<Model, Real>;

class ClientRequests implements Cmd {
  constructor(readonly role: string, readonly count: number, readonly viaList: boolean) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const now = r.clock.now();
    const before = m.entries.get(this.role);
    const expectServed = servable(before, now);
    if (this.viaList) await r.cache.roleList();
    const results = await Promise.all(Array.from({ length: this.count }, () => r.cache.lookup(this.role)));
    const after = m.entries.get(this.role);
    for (const result of results) {
      if (expectServed) expect(result.kind, `served ${this.role} while servable credentials are held`).toBe('found');
      if (result.kind !== 'found') continue;
      const served = result.entry.credentials;
      // Never past Expiration less the margin; never an error document; only what IMDS issued.
      expect(isServable(served, r.clock.now(), S), 'servable when served').toBe(true);
      const doc = parseCredentialsDocument(result.entry.body);
      expect(doc.kind, 'a credentials document').toBe('credentials');
      expect([before?.accessKeyId, after?.accessKeyId], 'the newest IMDS issued').toContain(served.accessKeyId);
    }
    await r.cache.refreshIfDue();
    checkInvariants(m, r);
  }
  toString = () => `ClientRequests(${this.role}, ${this.count}${this.viaList ? ', via list' : ''})`;
}

class Advance implements Cmd {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    await letTimePass(r, this.ms, () => checkServedWithinBound(m, r));
    checkInvariants(m, r);
  }
  toString = () => `Advance(${this.ms} ms)`;
}

class StepWall implements Cmd {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    r.clock.stepWall(this.ms);
    // A wall step can make IMDS re-issue (its credentials near expiry on the new time).
    disturb(m, r);
    await r.cache.refreshIfDue();
    checkInvariants(m, r);
  }
  toString = () => `StepWall(${this.ms} ms)`;
}

class Rotate implements Cmd {
  constructor(readonly lifetimeMs: number) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    r.imds.lifetimeMs = this.lifetimeMs;
    r.imds.rotate();
    checkInvariants(m, r);
  }
  toString = () => `Rotate(lifetime ${this.lifetimeMs} ms)`;
}

class ChangeRoles implements Cmd {
  constructor(readonly roles: string[]) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    r.imds.roles = [...this.roles];
    disturb(m, r);
    checkInvariants(m, r);
  }
  toString = () => `ChangeRoles(${JSON.stringify(this.roles)})`;
}

class TokenMode implements Cmd {
  constructor(readonly v1Only: 0 | 403 | 404 | 405, readonly tokensRequired: boolean, readonly restart: boolean) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    r.imds.v1Only = this.v1Only;
    r.imds.tokensRequired = this.tokensRequired;
    if (this.restart) r.imds.restart();
    checkInvariants(m, r);
  }
  toString = () => `TokenMode(v1Only ${this.v1Only}, required ${this.tokensRequired}${this.restart ? ', restart' : ''})`;
}

class Fault implements Cmd {
  constructor(readonly kind: FaultKind, readonly route: FaultRoute, readonly count: number) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    r.imds.fault(this.kind, this.route, this.count);
    checkInvariants(m, r);
  }
  toString = () => `Fault(${this.kind} on ${this.route} x${this.count})`;
}

/** Only looks: the invariants hold with nothing changed. */
class Look implements Cmd {
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    checkInvariants(m, r);
  }
  toString = () => 'Look';
}

const roleArb = fc.constantFrom(ROLE_A, ROLE_B, 'not-a-listed-role');
const commands = [
  fc.tuple(roleArb, fc.integer({ min: 1, max: 8 }), fc.boolean()).map(([role, n, viaList]) => new ClientRequests(role, n, viaList)),
  fc
    .oneof(
      fc.integer({ min: 1_000, max: 60_000 }),
      fc.integer({ min: 60_000, max: 30 * 60_000 }),
      fc.integer({ min: 30 * 60_000, max: 7 * HOUR }),
    )
    .map((ms) => new Advance(ms)),
  fc.constantFrom(-HOUR, HOUR, -10 * 60_000, 10 * 60_000).map((ms) => new StepWall(ms)),
  fc.constantFrom(6 * HOUR, 25 * 60_000, 70 * 60_000).map((ms) => new Rotate(ms)),
  fc.constantFrom([ROLE_A], [ROLE_B], [ROLE_A, ROLE_B], [] as string[]).map((roles) => new ChangeRoles(roles)),
  fc
    .tuple(fc.constantFrom(0 as const, 403 as const, 404 as const, 405 as const), fc.boolean(), fc.boolean())
    .map(([v1, required, restart]) => new TokenMode(v1, required, restart)),
  // Back to IMDSv2 with tokens required: the transition out of IMDSv1 mode (item 2).
  fc.boolean().map((restart) => new TokenMode(0, true, restart)),
  fc
    .oneof(
      fc.tuple(fc.constantFrom<FaultKind>('timeout', 'reset', 'throttle', 'server_error', 'unauthorized'), fc.constantFrom<FaultRoute>('token', 'credentials_list', 'credentials', 'any')),
      fc.tuple(fc.constant<FaultKind>('listing_404'), fc.constant<FaultRoute>('credentials_list')),
      fc.tuple(fc.constantFrom<FaultKind>('malformed_json', 'error_document', 'expired_document'), fc.constant<FaultRoute>('credentials')),
    )
    .chain(([kind, route]) => fc.integer({ min: 1, max: 6 }).map((n) => new Fault(kind, route, n))),
  fc.constant(new Look()),
];

const NUM_RUNS = Number(process.env.MODEL_RUNS ?? 1_000);

describe('credential state machine, model-based', () => {
  it(`holds every invariant over ${NUM_RUNS} random command sequences`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer(),
        fc.constantFrom(6 * HOUR, 25 * 60_000),
        fc.commands(commands, { maxCommands: 40 }),
        async (seed, lifetimeMs, cmds) => {
          await fc.asyncModelRun(() => setup(seed, lifetimeMs), cmds);
        },
      ),
      {
        numRuns: NUM_RUNS,
        ...(process.env.MODEL_SEED !== undefined ? { seed: Number(process.env.MODEL_SEED) } : {}),
        ...(process.env.MODEL_PATH !== undefined ? { path: process.env.MODEL_PATH } : {}),
        // The report (seed, path, shrunk commands) is what the failure message carries.
        verbose: 1,
      },
    );
  }, 120_000);
});

/** Sequences worth keeping whatever the generator draws: each was a bug once (issue #11). */
describe('credential state machine, known sequences', () => {
  const run = (name: string, cmds: Cmd[]) =>
    it(name, async () => {
      await fc.asyncModelRun(() => setup(1, 6 * HOUR), cmds);
    });
  run('one listing 404 keeps the credentials (item 1)', [new ClientRequests(ROLE_A, 1, false), new Fault('listing_404', 'credentials_list', 1), new Advance(6 * 60_000), new ClientRequests(ROLE_A, 3, true)]);
  run('IMDSv1 mode notices tokens became required (item 2)', [
    new ClientRequests(ROLE_A, 1, false),
    new TokenMode(403, true, false),
    new Advance(6 * 60_000),
    new TokenMode(0, true, false),
    new Advance(6 * 60_000),
  ]);
  run('a wall step back of an hour delays nothing (item 7)', [new ClientRequests(ROLE_A, 1, false), new StepWall(-HOUR), new Rotate(6 * HOUR), new Advance(HOUR)]);
  run('a role listed just after a cold empty listing is served within seconds, not max-age', [
    new ChangeRoles([]),
    new ClientRequests(ROLE_A, 1, true),
    new ChangeRoles([ROLE_A]),
    new Advance(2 * 60_000),
  ]);
  run('a role listed after the old one was dropped on empty listings is served within seconds', [
    new ClientRequests(ROLE_A, 1, false),
    new ChangeRoles([]),
    // The max-age refresh at 5 min reads the first empty listing; ~30 s later the role is dropped.
    new Advance(6 * 60_000),
    new ChangeRoles([ROLE_B]),
    new Advance(2 * 60_000),
  ]);
  run('a role with + = , @ refreshes (item 5)', [new ChangeRoles([ROLE_B]), new ClientRequests(ROLE_B, 2, true), new Advance(HOUR)]);
});
