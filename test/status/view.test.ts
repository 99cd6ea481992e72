import { describe, expect, it } from 'vitest';
import { parseExposition, sumOf } from '../../src/status/exposition.js';
import { defaultEndpoint } from '../../src/commands/status.js';
import { STATUS_EXIT, buildStatusView, formatDuration, renderStatusText, type Observation } from '../../src/status/view.js';

const NOW = Date.UTC(2026, 10, 30, 12, 0, 0);

function scrape(lines: string[]): string {
  return `# HELP x y\n# TYPE x counter\n${lines.join('\n')}\n`;
}

function observation(at: number, lines: string[], ready = true): Observation {
  return {
    at,
    readiness: ready ? { status: 200, body: 'ready\n' } : { status: 503, body: 'not ready: no valid credentials cached yet\n' },
    samples: parseExposition(scrape(lines)),
  };
}

describe('parseExposition', () => {
  it('reads names, escaped label values, timestamps and special values; skips what it cannot read', () => {
    const samples = parseExposition(
      [
        '# HELP a_total counts',
        'a_total{role="we\\"ird\\\\role",outcome="x"} 3',
        'b 1.5e3 1700000000000',
        'c{le="+Inf"} +Inf',
        'd NaN',
        'garbage line here',
        'e{unterminated="x} 1',
        'f{trailing="comma",} 7',
        '',
      ].join('\n'),
    );
    expect(samples.map((s) => s.name)).toEqual(['a_total', 'b', 'c', 'd', 'f']);
    expect(samples[0]!.labels).toEqual({ role: 'we"ird\\role', outcome: 'x' });
    expect(samples[1]!.value).toBe(1500);
    expect(samples[2]!.value).toBe(Infinity);
    expect(samples[3]!.value).toBeNaN();
    expect(samples[4]).toEqual({ name: 'f', labels: { trailing: 'comma' }, value: 7 });
    expect(sumOf(samples, 'a_total', { outcome: 'x' })).toBe(3);
    expect(sumOf(samples, 'a_total', { outcome: 'y' })).toBe(0);
  });
});

describe('buildStatusView', () => {
  const before = observation(NOW, [
    'imds_proxy_upstream_requests_total{route="credentials",outcome="success"} 10',
    'imds_proxy_upstream_requests_total{route="credentials",outcome="timeout"} 0',
    'imds_proxy_cache_requests_total{cache="credentials",result="hit"} 100',
    'imds_proxy_cache_requests_total{cache="credentials",result="miss"} 1',
    'imds_proxy_tokens_issued_total 50',
  ]);
  const after = observation(NOW + 2000, [
    'imds_proxy_build_info{version="9.9.9"} 1',
    'imds_proxy_upstream_requests_total{route="credentials",outcome="success"} 12',
    'imds_proxy_upstream_requests_total{route="credentials_list",outcome="success"} 2',
    'imds_proxy_upstream_requests_total{route="credentials",outcome="timeout"} 4',
    'imds_proxy_cache_requests_total{cache="credentials",result="hit"} 130',
    'imds_proxy_cache_requests_total{cache="credentials",result="miss"} 1',
    'imds_proxy_cache_requests_total{cache="credentials",result="stale"} 10',
    'imds_proxy_tokens_issued_total 54',
    `imds_proxy_credentials_expiration_timestamp_seconds{role="app-role"} ${NOW / 1000 + 600}`,
    `imds_proxy_credentials_last_refresh_timestamp_seconds{role="app-role"} ${NOW / 1000 - 2000}`,
    'imds_proxy_credentials_info{role="app-role",access_key_id_suffix="WXYZ"} 1',
  ]);

  it('turns two scrapes into rates, ratios and per-role times', () => {
    const view = buildStatusView('http://127.0.0.1:8169', before, after);
    expect(view.intervalSeconds).toBe(2);
    expect(view.version).toBe('9.9.9');
    expect(view.upstream.perSecond.success).toBe(2); // (12 + 2 - 10) / 2 s, summed over routes
    expect(view.upstream.perSecond.timeout).toBe(2);
    expect(view.upstream.sinceStart.timeout).toBe(4);
    expect(view.cache.credentials.hitRatio).toBeCloseTo(30 / 40);
    expect(view.cache.credentials.hitRatioSinceStart).toBeCloseTo(130 / 141);
    expect(view.cache.metadata.hitRatio).toBeNull();
    expect(view.tokens).toEqual({ issued: 54, perSecond: 2 });
    expect(view.roles).toEqual([{ role: 'app-role', accessKeyIdSuffix: 'WXYZ', expiresInSeconds: 598, lastRefreshSecondsAgo: 2002 }]);
  });

  it('says what needs a look, with the thresholds the alerts use, and is ready all the same', () => {
    const view = buildStatusView('http://127.0.0.1:8169', before, after);
    expect(view.ready).toBe(true);
    expect(view.exitCode).toBe(STATUS_EXIT.ready);
    expect(view.problems).toEqual([
      'credentials for app-role expire in 9m 58s and have not been replaced',
      'no successful refresh of app-role for 33m 22s',
      'upstream IMDS failing: timeout 2.00/s',
      'serving stale credentials: refreshes are failing',
    ]);
    const text = renderStatusText(view);
    expect(text).toMatch(/^imds-cache-proxy 9\.9\.9 at http:\/\/127\.0\.0\.1:8169: READY\n/);
    expect(text).toMatch(/app-role\s+WXYZ\s+9m 58s\s+33m 22s ago/);
    expect(text).toMatch(/timeout\s+2\.00\/s\s+\(4\)/);
    expect(text).toMatch(/credentials cache hit ratio\s+75\.0%\s+\(92\.2% since start\)/);
  });

  it('is not ready with /readyz\'s reason, and counts from zero after a restart', () => {
    const restarted = observation(NOW + 1000, ['imds_proxy_tokens_issued_total 3'], false);
    const view = buildStatusView('http://127.0.0.1:8169', before, restarted);
    expect(view.ready).toBe(false);
    expect(view.exitCode).toBe(STATUS_EXIT.notReady);
    expect(view.problems[0]).toBe('not ready: no valid credentials cached yet');
    expect(view.tokens.perSecond).toBe(3);
    expect(renderStatusText(view)).toContain('NOT READY: no valid credentials cached yet');
    expect(renderStatusText(view)).toContain('(no credentials cached)');
  });

  it('without /metrics reports readiness only', () => {
    const view = buildStatusView('http://x:1', { ...before, samples: undefined }, { ...after, samples: undefined });
    expect(view.metrics).toBe(false);
    expect(view.roles).toEqual([]);
    expect(view.problems).toEqual(['no /metrics (the proxy runs with --metrics off): only readiness is known']);
  });

  it('formats durations as people read them', () => {
    expect([formatDuration(42), formatDuration(723), formatDuration(21540), formatDuration(-5)]).toEqual(['42s', '12m 3s', '5h 59m', '0s']);
  });
});

describe('defaultEndpoint', () => {
  it('reads IMDS_PROXY_LISTEN as serve does, wildcards as loopback', () => {
    expect(defaultEndpoint({})).toBe('http://127.0.0.1:8169');
    expect(defaultEndpoint({ IMDS_PROXY_LISTEN: '' })).toBe('http://127.0.0.1:8169');
    expect(defaultEndpoint({ IMDS_PROXY_LISTEN: '0.0.0.0:9000' })).toBe('http://127.0.0.1:9000');
    expect(defaultEndpoint({ IMDS_PROXY_LISTEN: '[::]:9000' })).toBe('http://[::1]:9000');
    expect(defaultEndpoint({ IMDS_PROXY_LISTEN: '[::1]:9001' })).toBe('http://[::1]:9001');
    expect(defaultEndpoint({ IMDS_PROXY_LISTEN: '169.254.170.23:80' })).toBe('http://169.254.170.23:80');
    expect(() => defaultEndpoint({ IMDS_PROXY_LISTEN: 'nonsense' })).toThrow(/IMDS_PROXY_LISTEN: expected HOST:PORT/);
  });
});
