import { describe, expect, it } from 'vitest';
import { parseServeConfig } from '../../src/config/proxyConfig.js';
import { UsageError } from '../../src/config/usageError.js';

function usageError(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof UsageError) return error.message;
    throw error;
  }
  throw new Error('expected a UsageError');
}

describe('serve configuration', () => {
  it('has safe defaults: loopback listen, tokens required', () => {
    const c = parseServeConfig([], {});
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 8169 });
    expect(c.clientTokens).toBe('required');
    expect([c.maxAgeSeconds, c.refreshBeforeSeconds, c.upstreamTimeoutMs]).toEqual([300, 1800, 1000]);
  });

  it('reads environment variables, and a flag wins over its variable', () => {
    const env = { IMDS_PROXY_LISTEN: '127.0.0.1:9000', IMDS_PROXY_MAX_AGE: '120', IMDS_PROXY_ALLOW_CIDR: '10.0.0.0/8, fd00::/8' };
    const fromEnv = parseServeConfig([], env);
    expect(fromEnv.listen.port).toBe(9000);
    expect(fromEnv.maxAgeSeconds).toBe(120);
    expect(fromEnv.allowCidrs).toEqual(['10.0.0.0/8', 'fd00::/8']);
    expect(parseServeConfig(['--listen', '[::1]:9001'], env).listen).toEqual({ host: '::1', port: 9001 });
  });

  it('names the bad flag or variable and the value, in one line', () => {
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['--max-age', 'abc'], {}, /^--max-age: .*"abc"$/],
      [['--listen', 'localhost'], {}, /^--listen: .*"localhost"$/],
      [['--upstream', 'ftp://x'], {}, /^--upstream: .*"ftp:\/\/x"$/],
      [['--client-tokens', 'maybe'], {}, /^--client-tokens: expected one of required\|optional, got "maybe"$/],
      [['--allow-cidr', '10.0.0.0/33'], {}, /^--allow-cidr: .*"10\.0\.0\.0\/33"$/],
      [[], { IMDS_PROXY_UPSTREAM_TIMEOUT_MS: '1.5' }, /^IMDS_PROXY_UPSTREAM_TIMEOUT_MS: .*"1\.5"$/],
      [['--nope'], {}, /--nope/],
      [['--refresh-before', '30'], {}, /^--refresh-before: 30 must be larger than --expiry-margin/],
    ];
    for (const [argv, env, pattern] of cases) {
      const message = usageError(() => parseServeConfig(argv, env));
      expect(message).toMatch(pattern);
      expect(message).not.toContain('\n');
    }
  });

  it('--allow-host: repeatable, or IMDS_PROXY_ALLOW_HOST comma-separated; lower-cased; a bad name named with the value', () => {
    expect(parseServeConfig([], {}).allowHosts).toEqual([]);
    expect(parseServeConfig(['--allow-host', 'Proxy.Internal', '--allow-host', 'imds-proxy'], {}).allowHosts).toEqual(['proxy.internal', 'imds-proxy']);
    expect(parseServeConfig([], { IMDS_PROXY_ALLOW_HOST: 'a.example, b.example' }).allowHosts).toEqual(['a.example', 'b.example']);
    expect(parseServeConfig(['--allow-host', 'c.example'], { IMDS_PROXY_ALLOW_HOST: 'a.example' }).allowHosts).toEqual(['c.example']);
    for (const bad of ['proxy.internal:8169', 'http://proxy', 'under_score', '-lead', '', 'a..b']) {
      const message = usageError(() => parseServeConfig([`--allow-host=${bad}`], {}));
      expect(message).toBe(`--allow-host: expected a DNS name like proxy.internal (no port, no scheme), got "${bad}"`);
    }
    expect(usageError(() => parseServeConfig([], { IMDS_PROXY_ALLOW_HOST: 'ok.example,bad name' }))).toMatch(/^IMDS_PROXY_ALLOW_HOST: .*"bad name"$/);
  });

  it('--max-connections: 8192 by default, from its flag or IMDS_PROXY_MAX_CONNECTIONS, a bad value named with the value', () => {
    expect(parseServeConfig([], {}).maxConnections).toBe(8192);
    expect(parseServeConfig(['--max-connections', '64'], {}).maxConnections).toBe(64);
    expect(parseServeConfig([], { IMDS_PROXY_MAX_CONNECTIONS: '512' }).maxConnections).toBe(512);
    expect(parseServeConfig(['--max-connections', '64'], { IMDS_PROXY_MAX_CONNECTIONS: '512' }).maxConnections).toBe(64);
    expect(parseServeConfig([], { IMDS_PROXY_MAX_CONNECTIONS: '' }).maxConnections).toBe(8192);
    for (const bad of ['0', '-1', '1.5', 'lots', '1e3', '1000001', ' 64']) {
      expect(usageError(() => parseServeConfig([`--max-connections=${bad}`], {}))).toBe(
        `--max-connections: expected a whole number from 1 to 1000000, got "${bad}"`,
      );
    }
    // parseArgs takes `--flag -1` for a missing value; the message still names flag and value.
    expect(usageError(() => parseServeConfig(['--max-connections', '-1'], {}))).toBe(
      '--max-connections: a value starting with "-" must be given as --max-connections=VALUE, got "-1"',
    );
    expect(usageError(() => parseServeConfig([], { IMDS_PROXY_MAX_CONNECTIONS: '0' }))).toBe(
      'IMDS_PROXY_MAX_CONNECTIONS: expected a whole number from 1 to 1000000, got "0"',
    );
  });

  it('keeps only the origin of the upstream URL', () => {
    expect(parseServeConfig(['--upstream', 'http://127.0.0.1:8170/'], {}).upstream).toBe('http://127.0.0.1:8170');
    expect(parseServeConfig(['--upstream', 'http://[fd00:ec2::254]'], {}).upstream).toBe('http://[fd00:ec2::254]');
  });
});
