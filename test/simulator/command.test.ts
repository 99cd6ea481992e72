import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseSimulateArgs, runSimulateCommand } from '../../src/commands/simulate.js';
import { UsageError } from '../../src/config/usageError.js';

const usageError = (argv: string[]): string => {
  try {
    parseSimulateArgs(argv);
  } catch (error) {
    if (error instanceof UsageError) return error.message;
    throw error;
  }
  throw new Error(`expected a UsageError for ${argv.join(' ')}`);
};

describe('simulate flags', () => {
  const cases: [string[], RegExp][] = [
    [['--throttle-rps', 'lots'], /^--throttle-rps: .*"lots"$/],
    [['--throttle-rps', '0'], /^--throttle-rps: .*"0"$/],
    [['--throttle-burst=-1'], /^--throttle-burst: .*"-1"$/],
    [['--throttle-burst', '-1'], /'--throttle-burst'/],
    [['--throttle-mode', 'slow'], /^--throttle-mode: .*"slow"$/],
    [['--max-connections', '2.5'], /^--max-connections: .*"2\.5"$/],
    [['--latency-ms', '1e3'], /^--latency-ms: .*"1e3"$/],
    [['--error-rate', '1.5'], /^--error-rate: .*"1\.5"$/],
    [['--error-rate', 'half'], /^--error-rate: .*"half"$/],
    [['--http-tokens', 'maybe'], /^--http-tokens: .*"maybe"$/],
    [['--imdsv1-only', '500'], /^--imdsv1-only: .*"500"$/],
    [['--credential-lifetime', '60'], /^--credential-lifetime: .*"60"$/],
    [['--credential-lifetime', '3700'], /^--credential-lifetime: .*rotation.*"3700"$/],
    [['--rotation-period', '21500'], /^--rotation-period: .*"21500"$/],
    [['--listen', 'nonsense'], /^--listen: .*"nonsense"$/],
    [['--listen', '127.0.0.1:70000'], /^--listen: .*"127\.0\.0\.1:70000"$/],
    [['--control-listen', '0.0.0.0:8171'], /^--control-listen: .*loopback.*"0\.0\.0\.0:8171"$/],
    [['--control-listen', '10.1.2.3:8171'], /^--control-listen: .*loopback/],
    [['--listen', '127.0.0.1:9000', '--control-listen', '127.0.0.1:9000'], /^--control-listen: .*"127\.0\.0\.1:9000"$/],
    [['--role', 'bad role'], /^--role: .*"bad role"$/],
    [['--nope'], /--nope/],
    [['stray-positional'], /stray-positional/],
  ];
  for (const [argv, message] of cases) {
    it(`${argv.join(' ')} → a one-line UsageError naming the flag`, () => {
      const text = usageError(argv);
      expect(text).toMatch(message);
      expect(text).not.toContain('\n');
    });
  }

  it('defaults: IMDS on 127.0.0.1:8170, control on 127.0.0.1:8171, one demo role, drop mode', () => {
    const { options, help } = parseSimulateArgs([]);
    expect(help).toBe(false);
    expect(options).toMatchObject({ host: '127.0.0.1', port: 8170, controlHost: '127.0.0.1', controlPort: 8171, roles: ['demo-role'], throttleMode: 'drop' });
    expect(options.throttleRps).toBeUndefined();
  });

  it('turns flags into simulator options', () => {
    const { options } = parseSimulateArgs([
      '--listen', '[::1]:0', '--control-listen', '[::1]:0', '--throttle-rps', '50', '--throttle-burst', '80',
      '--throttle-mode', '429', '--role', 'a', '--role', 'b', '--error-document', '--expired-credentials',
      '--latency-ms', '20', '--error-rate', '0.25', '--http-tokens', 'optional', '--imdsv1-only', '404',
      '--max-connections', '64', '--credential-lifetime', '7200', '--rotation-period', '600', '--extended-credentials',
    ]);
    expect(options).toEqual({
      host: '::1', port: 0, controlHost: '::1', controlPort: 0, roles: ['a', 'b'], throttleMode: '429',
      throttleRps: 50, throttleBurst: 80, maxConnections: 64, credentialLifetimeSeconds: 7200, rotationPeriodSeconds: 600,
      extendedCredentials: true,
      faults: { errorDocument: true, expiredCredentials: true, latencyMs: 20, errorRate: 0.25, httpTokens: 'optional', imdsV1Only: 404 },
    });
  });

  it('an IPv6 IMDS address keeps the default IPv4 loopback control API', () => {
    expect(parseSimulateArgs(['--listen', '[::1]:8170']).options).toMatchObject({ host: '::1', controlHost: '127.0.0.1' });
  });

  it('--help wins over other flags', () => {
    expect(parseSimulateArgs(['--help', '--throttle-rps', 'x']).help).toBe(true);
  });
});

describe('runSimulateCommand', () => {
  afterEach(() => vi.restoreAllMocks());

  it('--help prints the usage and returns 0', async () => {
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    expect(await runSimulateCommand(['--help'])).toBe(0);
    expect(String(write.mock.calls[0]?.[0])).toMatch(/^Usage: imds-cache-proxy simulate/);
  });

  it('serves until SIGTERM, printing one line with both URLs, then closes and returns 0', async () => {
    const lines: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      lines.push(String(chunk));
      return true;
    });
    // Catch the stop handlers rather than signalling the test runner's own process.
    const stopHandlers = new Map<string, () => void>();
    const realOn = process.on.bind(process);
    vi.spyOn(process, 'on').mockImplementation(((event: string, listener: () => void) => {
      if (event === 'SIGINT' || event === 'SIGTERM') stopHandlers.set(event, listener);
      else realOn(event, listener);
      return process;
    }) as typeof process.on);

    const running = runSimulateCommand(['--listen', '127.0.0.1:0', '--control-listen', '127.0.0.1:0', '--role', 'cli-role']);
    for (let i = 0; i < 200 && lines.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(lines).toHaveLength(1);
    const [imdsUrl, controlUrl] = [...lines[0]!.matchAll(/http:\/\/127\.0\.0\.1:\d+/g)].map((m) => m[0]);
    expect(imdsUrl).toBeDefined();
    expect(controlUrl).toBeDefined();
    const token = await (await fetch(`${imdsUrl}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } })).text();
    const list = await fetch(`${imdsUrl}/latest/meta-data/iam/security-credentials/`, { headers: { 'x-aws-ec2-metadata-token': token } });
    expect(await list.text()).toBe('cli-role');
    expect((await fetch(`${controlUrl}/counters`)).status).toBe(200);

    stopHandlers.get('SIGTERM')!();
    expect(await running).toBe(0);
    await expect(fetch(`${imdsUrl}/latest/api/token`, { method: 'PUT', signal: AbortSignal.timeout(2000) })).rejects.toThrow();
  });
});
