import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// These tests only ever look at the rules the script would write: its dry-run text, that
// text checked by `iptables-restore --test` (which parses and validates, and applies nothing),
// and real install/remove inside a throwaway network namespace (`unshare --net`) that
// vanishes with its process. No test sends any traffic.

const SCRIPT = fileURLToPath(new URL('../../deploy/host/imds-redirect.sh', import.meta.url));

function run(...args: string[]) {
  const r = spawnSync('bash', [SCRIPT, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
/** Rules only: the dry run's comment header dropped. */
const rules = (text: string) => text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));

const IS_ROOT = process.getuid?.() === 0;
const HAS_RESTORE = spawnSync('iptables-restore', ['--version'], { stdio: 'ignore' }).status === 0;
const CAN_TEST_RULES = IS_ROOT && HAS_RESTORE;
const SKIP_RESTORE = HAS_RESTORE
  ? 'iptables-restore --test needs root here'
  : 'iptables-restore not installed (apt-get install iptables); CI installs it';
const CAN_NETNS =
  CAN_TEST_RULES && spawnSync('unshare', ['--net', 'iptables', '-t', 'nat', '-S'], { stdio: 'ignore' }).status === 0;
const SKIP_NETNS = 'no throwaway network namespace here (needs root, unshare and iptables); CI runs as root';
const note = (ok: boolean, why: string) => (ok ? '' : ` — skipped: ${why}`);

const HOST_RULES = [
  '*nat',
  ':IMDS_CACHE_PROXY - [0:0]',
  '-A IMDS_CACHE_PROXY -m owner --uid-owner 4242 -j RETURN',
  '-A IMDS_CACHE_PROXY -p tcp -j DNAT --to-destination 127.0.0.1:8169',
  '-I OUTPUT 1 -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m comment --comment imds-cache-proxy -j IMDS_CACHE_PROXY',
  'COMMIT',
];

const POD_RULES = [
  '*nat',
  ':IMDS_CACHE_PROXY_PODS - [0:0]',
  '-A IMDS_CACHE_PROXY_PODS ! -i lo -p tcp -j DNAT --to-destination 10.0.3.7:8169',
  '-I PREROUTING 1 -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m comment --comment imds-cache-proxy -j IMDS_CACHE_PROXY_PODS',
  'COMMIT',
  '*filter',
  ':IMDS_CACHE_PROXY_GUARD - [0:0]',
  '-A IMDS_CACHE_PROXY_GUARD -i lo -j RETURN',
  '-A IMDS_CACHE_PROXY_GUARD -m conntrack --ctstate DNAT --ctorigdst 169.254.169.254/32 -j RETURN',
  '-A IMDS_CACHE_PROXY_GUARD -j DROP',
  '-I INPUT 1 -d 10.0.3.7/32 -p tcp -m tcp --dport 8169 -m comment --comment imds-cache-proxy -j IMDS_CACHE_PROXY_GUARD',
  'COMMIT',
];

describe('deploy/host/imds-redirect.sh', () => {
  it('host mode: prints exactly one jump for tcp to 169.254.169.254:80, the proxy user excluded before the DNAT', () => {
    const r = run('print', '--proxy-user', '4242');
    expect(r.status, r.stderr).toBe(0);
    expect(rules(r.stdout)).toEqual(HOST_RULES);
    expect(run('install', '--dry-run', '--proxy-user', '4242').stdout.split('\n').slice(1)).toEqual(
      r.stdout.split('\n').slice(1),
    );
  });

  it('follows --proxy-port and resolves --proxy-user names to their uid', () => {
    const r = run('print', '--proxy-user', 'nobody', '--proxy-port', '9000');
    expect(r.status, r.stderr).toBe(0);
    const uid = spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout.trim();
    expect(rules(r.stdout)).toContain(`-A IMDS_CACHE_PROXY -m owner --uid-owner ${uid} -j RETURN`);
    expect(rules(r.stdout)).toContain('-A IMDS_CACHE_PROXY -p tcp -j DNAT --to-destination 127.0.0.1:9000');
  });

  it('print works on a host without the proxy user, naming the placeholder it writes for the uid', () => {
    const r = run('print', '--proxy-user', 'no-such-user-imds-test');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^# no user "no-such-user-imds-test" on this host: <uid-of-no-such-user-imds-test> stands for its uid/m);
    expect(rules(r.stdout)).toEqual(HOST_RULES.map((l) => l.replace('4242', '<uid-of-no-such-user-imds-test>')));
  });

  it('refuses what would loop, leak or mean nothing, with exit 2 and a reason', () => {
    const cases: [string[], RegExp][] = [
      [['print', '--proxy-user', '0'], /uid 0/],
      [['install', '--dry-run', '--proxy-user', 'no-such-user-imds-test'], /no user "no-such-user-imds-test"/],
      [['print', '--proxy-user', '4242', '--proxy-port', '0'], /--proxy-port/],
      [['print', '--proxy-user', '4242', '--proxy-port', '8169; reboot'], /--proxy-port/],
      [['print', '--proxy-user', '4242', '--proxy-address', '10.0.0.1'], /--mode pods/],
      [['print', '--mode', 'pods'], /--proxy-address/],
      [['print', '--mode', 'pods', '--proxy-address', '127.0.0.1'], /loopback/],
      [['print', '--mode', 'pods', '--proxy-address', '10.0.0.300'], /IPv4/],
      [['print', '--mode', 'pods', '--proxy-address', '10.0.0.1', '--pod-interface', 'eth0 -j ACCEPT'], /--pod-interface/],
      [['print', '--mode', 'elsewhere'], /--mode/],
      [['print', '--frobnicate'], /unknown option/],
      [['launch'], /install, remove or print/],
    ];
    for (const [args, reason] of cases) {
      const r = run(...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stdout, args.join(' ')).toBe('');
      expect(r.stderr, args.join(' ')).toMatch(reason);
    }
  });

  it('pods mode: PREROUTING to the node address, and a guard that admits only the node and redirected pods', () => {
    const r = run('print', '--mode', 'pods', '--proxy-address', '10.0.3.7');
    expect(r.status, r.stderr).toBe(0);
    expect(rules(r.stdout)).toEqual(POD_RULES);
    const iface = rules(run('print', '--mode', 'pods', '--proxy-address', '10.0.3.7', '--pod-interface', 'eni+').stdout);
    expect(iface).toContain('-A IMDS_CACHE_PROXY_PODS -i eni+ -p tcp -j DNAT --to-destination 10.0.3.7:8169');
  });

  it('remove --dry-run prints the exact undo of install', () => {
    const r = run('remove', '--dry-run', '--proxy-user', '4242');
    expect(r.status, r.stderr).toBe(0);
    expect(rules(r.stdout)).toEqual([
      '*nat',
      '-D OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m comment --comment imds-cache-proxy -j IMDS_CACHE_PROXY',
      '-F IMDS_CACHE_PROXY',
      '-X IMDS_CACHE_PROXY',
      'COMMIT',
    ]);
  });

  it('never sends traffic itself: no network client anywhere in the script', () => {
    // Code only: comments and quoted messages dropped.
    const code = readFileSync(SCRIPT, 'utf8')
      .split('\n')
      .filter((l) => !l.trimStart().startsWith('#'))
      .map((l) => l.replace(/"[^"]*"/g, '""'))
      .join('\n');
    expect(code).not.toMatch(/\b(curl|wget|nc|ncat|socat|telnet|ping|ssh|python3?|node|perl|nsenter)\b|\/dev\/(tcp|udp)/);
    // The only programs it runs on the system: iptables and iptables-restore (and id, awk, grep, sed).
    expect(readFileSync(SCRIPT, 'utf8')).toContain('"$RESTORE" -w --noflush <<<"$rules"');
  });

  it.skipIf(!CAN_TEST_RULES)(`iptables-restore --test accepts both modes' rules${note(CAN_TEST_RULES, SKIP_RESTORE)}`, () => {
    for (const args of [
      ['print', '--proxy-user', '4242'],
      ['print', '--mode', 'pods', '--proxy-address', '10.0.3.7'],
      ['print', '--mode', 'pods', '--proxy-address', '10.0.3.7', '--pod-interface', 'cali+'],
    ]) {
      const text = run(...args).stdout;
      const r = spawnSync('iptables-restore', ['--test', '--noflush'], { input: text, encoding: 'utf8' });
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    }
  });

  it.skipIf(!CAN_NETNS)(
    `in a throwaway network namespace: install is idempotent, follows changes, and remove leaves nothing${note(CAN_NETNS, SKIP_NETNS)}`,
    () => {
      // One shell in a fresh network namespace (gone when it exits): the host's rules are never touched.
      const inNamespace = `
        set -e
        S="${SCRIPT}"
        dump() { iptables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]/[0:0]/'; }
        echo "== empty"; dump
        bash "$S" install --proxy-user 4242 >/dev/null
        bash "$S" install --proxy-user 4242 >/dev/null
        echo "== host twice"; dump
        bash "$S" install --proxy-user 4242 --proxy-port 8170 >/dev/null
        echo "== host port changed"; dump
        bash "$S" install --mode pods --proxy-address 10.0.3.7 >/dev/null
        bash "$S" install --mode pods --proxy-address 10.0.3.8 >/dev/null
        echo "== pods address changed"; dump
        bash "$S" remove
        bash "$S" remove --mode pods
        echo "== removed"; dump
        bash "$S" remove
      `;
      const r = spawnSync('unshare', ['--net', 'bash', '-c', inNamespace], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const sections = Object.fromEntries(
        r.stdout
          .split('== ')
          .slice(1)
          .map((s) => {
            const [name, ...lines] = s.split('\n');
            return [name!, lines.filter((l) => l.startsWith('-') || l.startsWith(':'))];
          }),
      ) as Record<string, string[]>;

      const twice = sections['host twice']!;
      expect(twice.filter((l) => l.startsWith('-A OUTPUT'))).toEqual([
        '-A OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m comment --comment imds-cache-proxy -j IMDS_CACHE_PROXY',
      ]);
      expect(twice.filter((l) => l.startsWith('-A IMDS_CACHE_PROXY '))).toEqual([
        '-A IMDS_CACHE_PROXY -m owner --uid-owner 4242 -j RETURN',
        '-A IMDS_CACHE_PROXY -p tcp -j DNAT --to-destination 127.0.0.1:8169',
      ]);
      expect(sections['host port changed']).toContain('-A IMDS_CACHE_PROXY -p tcp -j DNAT --to-destination 127.0.0.1:8170');
      expect(sections['host port changed']!.filter((l) => l.includes('DNAT'))).toHaveLength(1);

      const pods = sections['pods address changed']!;
      expect(pods.filter((l) => l.startsWith('-A PREROUTING'))).toHaveLength(1);
      expect(pods.filter((l) => l.startsWith('-A INPUT'))).toEqual([
        '-A INPUT -d 10.0.3.8/32 -p tcp -m tcp --dport 8169 -m comment --comment imds-cache-proxy -j IMDS_CACHE_PROXY_GUARD',
      ]);
      expect(pods).toContain('-A IMDS_CACHE_PROXY_PODS ! -i lo -p tcp -j DNAT --to-destination 10.0.3.8:8169');
      expect(pods.join('\n')).not.toContain('10.0.3.7');

      // A fresh namespace has no tables loaded; after remove, the tables are there and empty.
      expect(sections.empty).toEqual([]);
      expect(sections.removed!.filter((l) => !/^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT /.test(l))).toEqual([]);
      expect(r.stdout).toContain('nothing to remove');
    },
    30_000,
  );
});
