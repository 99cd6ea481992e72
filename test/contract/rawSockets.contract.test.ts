import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultProxyConfig } from '../../src/config/proxyConfig.js';
import { createLogger } from '../../src/runtime/log.js';
import { startProxy, type RunningProxy } from '../../src/server/proxy.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';
import { RecordingMetrics } from '../support/recordingMetrics.js';

/**
 * The IMDS edges over raw sockets, where fetch would have tidied the request up: HTTP/1.0
 * without Host, doubled slashes, DNS-name and IP-literal Hosts, browser headers, garbage.
 * Two proxies in front of one simulator, one at --log-level debug and one at info, must
 * answer every request with the same status, headers and bytes (tokens differ per proxy,
 * so a token's bytes are compared by length).
 */

const ROLE = 'raw-role';
const CREDS = '/latest/meta-data/iam/security-credentials';
const TTL = 'X-aws-ec2-metadata-token-ttl-seconds: 21600';

interface RawAnswer {
  statusLine: string;
  /** Header lines as sent, Date left out: it is the only one that may differ. */
  headers: string[];
  body: string;
}

/** One request on a new connection; the answer is whatever arrives before the server closes. */
function raw(port: number, request: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (data += d));
    socket.on('error', reject);
    socket.on('close', () => {
      const split = data.indexOf('\r\n\r\n');
      const [statusLine = '', ...headers] = data.slice(0, split === -1 ? data.length : split).split('\r\n');
      resolve({ statusLine, headers: headers.filter((h) => !/^date:/i.test(h)), body: split === -1 ? '' : data.slice(split + 4) });
    });
    socket.write(request);
    setTimeout(() => socket.destroy(), 5_000).unref();
  });
}

const status = (a: RawAnswer) => Number(a.statusLine.split(' ')[1]);

/** `T` in a request stands for the proxy's token; `P` for its port. */
const CASES: { name: string; request: string; expected: number; tokenBody?: boolean }[] = [
  { name: 'HTTP/1.0 token PUT without Host', request: `PUT /latest/api/token HTTP/1.0\r\n${TTL}\r\n\r\n`, expected: 200, tokenBody: true },
  { name: 'HTTP/1.0 role list without Host', request: `GET ${CREDS}/ HTTP/1.0\r\nX-aws-ec2-metadata-token: T\r\n\r\n`, expected: 200 },
  { name: 'HTTP/1.0 credentials without Host', request: `GET ${CREDS}/${ROLE} HTTP/1.0\r\nX-aws-ec2-metadata-token: T\r\n\r\n`, expected: 200 },
  { name: 'HTTP/1.0 credentials with a query, without Host', request: `GET ${CREDS}/${ROLE}?x=1 HTTP/1.0\r\nX-aws-ec2-metadata-token: T\r\n\r\n`, expected: 200 },
  { name: 'HTTP/1.0 HEAD of the credentials', request: `HEAD ${CREDS}/${ROLE} HTTP/1.0\r\nX-aws-ec2-metadata-token: T\r\n\r\n`, expected: 200 },
  { name: 'HTTP/1.0 forwarded metadata without Host', request: 'GET /latest/meta-data/instance-id HTTP/1.0\r\nX-aws-ec2-metadata-token: T\r\n\r\n', expected: 200 },
  { name: 'HTTP/1.0 health without Host', request: 'GET /healthz HTTP/1.0\r\n\r\n', expected: 200 },
  { name: 'PUT //latest/api/token', request: `PUT //latest/api/token HTTP/1.1\r\nHost: 127.0.0.1:P\r\n${TTL}\r\nConnection: close\r\n\r\n`, expected: 200, tokenBody: true },
  { name: 'GET //…/security-credentials/', request: `GET /${CREDS}/ HTTP/1.1\r\nHost: 127.0.0.1:P\r\nX-aws-ec2-metadata-token: T\r\nConnection: close\r\n\r\n`, expected: 200 },
  { name: 'GET ///…/<role>', request: `GET //${CREDS}/${ROLE} HTTP/1.1\r\nHost: 127.0.0.1:P\r\nX-aws-ec2-metadata-token: T\r\nConnection: close\r\n\r\n`, expected: 200 },
  { name: 'GET //latest/meta-data/instance-id (forwarded)', request: 'GET //latest/meta-data/instance-id HTTP/1.1\r\nHost: 127.0.0.1\r\nX-aws-ec2-metadata-token: T\r\nConnection: close\r\n\r\n', expected: 200 },
  { name: 'Host: localhost:P', request: `PUT /latest/api/token HTTP/1.1\r\nHost: localhost:P\r\n${TTL}\r\nConnection: close\r\n\r\n`, expected: 200, tokenBody: true },
  { name: 'Host: [::1]:P', request: `GET ${CREDS}/${ROLE} HTTP/1.1\r\nHost: [::1]:P\r\nX-aws-ec2-metadata-token: T\r\nConnection: close\r\n\r\n`, expected: 200 },
  { name: 'Host: [::1]', request: `GET ${CREDS}/ HTTP/1.1\r\nHost: [::1]\r\nX-aws-ec2-metadata-token: T\r\nConnection: close\r\n\r\n`, expected: 200 },
  { name: 'Host: 169.254.169.254 (redirected traffic)', request: `GET ${CREDS}/${ROLE} HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token: T\r\nConnection: close\r\n\r\n`, expected: 200 },
  { name: 'DNS-name Host on the token PUT', request: `PUT /latest/api/token HTTP/1.1\r\nHost: attacker.example:8169\r\n${TTL}\r\nConnection: close\r\n\r\n`, expected: 403 },
  { name: 'DNS-name Host on the credentials, valid token', request: `GET ${CREDS}/${ROLE} HTTP/1.1\r\nHost: attacker.example\r\nX-aws-ec2-metadata-token: T\r\nConnection: close\r\n\r\n`, expected: 403 },
  { name: 'DNS-name Host on forwarded metadata', request: 'GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: attacker.example\r\nX-aws-ec2-metadata-token: T\r\nConnection: close\r\n\r\n', expected: 403 },
  { name: 'Origin on the token PUT, IP-literal Host', request: `PUT /latest/api/token HTTP/1.1\r\nHost: 127.0.0.1:P\r\nOrigin: http://127.0.0.1:P\r\n${TTL}\r\nConnection: close\r\n\r\n`, expected: 403 },
  { name: 'Sec-Fetch-Site on the credentials', request: `GET ${CREDS}/${ROLE} HTTP/1.1\r\nHost: 127.0.0.1\r\nSec-Fetch-Site: same-origin\r\nX-aws-ec2-metadata-token: T\r\nConnection: close\r\n\r\n`, expected: 403 },
  { name: 'HTTP/1.1 without Host', request: `PUT /latest/api/token HTTP/1.1\r\n${TTL}\r\nConnection: close\r\n\r\n`, expected: 400 },
  { name: 'a malformed Host', request: `GET ${CREDS}/ HTTP/1.1\r\nHost: [nope]:P\r\nX-aws-ec2-metadata-token: T\r\nConnection: close\r\n\r\n`, expected: 400 },
  { name: 'an absolute-form target', request: `GET http://127.0.0.1${CREDS}/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-aws-ec2-metadata-token: T\r\nConnection: close\r\n\r\n`, expected: 400 },
  { name: 'POST on the credentials', request: `POST ${CREDS}/${ROLE} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`, expected: 405 },
  { name: 'GET on the token path', request: `GET /latest/api/token HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`, expected: 405 },
  { name: 'no token on the credentials', request: `GET ${CREDS}/${ROLE} HTTP/1.0\r\n\r\n`, expected: 401 },
  { name: 'not HTTP at all', request: 'NOT-HTTP\u0000\r\n\r\n', expected: 400 },
];

describe('IMDS contract over raw sockets, at --log-level debug and info', () => {
  let sim: RunningSimulator;
  const proxies: Record<'debug' | 'info', { proxy: RunningProxy; port: number; token: string; metrics: RecordingMetrics }> = {} as never;
  const answers: Record<'debug' | 'info', RawAnswer[]> = { debug: [], info: [] };
  const discard = new Writable({ write: (_chunk, _encoding, done) => done() });

  beforeAll(async () => {
    sim = await startSimulator({ port: 0, roles: [ROLE] });
    for (const level of ['debug', 'info'] as const) {
      const metrics = new RecordingMetrics();
      const proxy = await startProxy(
        { ...defaultProxyConfig(), listen: { host: '127.0.0.1', port: 0 }, upstream: sim.url, logLevel: level },
        { logger: createLogger(level, discard), metrics },
      );
      const port = Number(new URL(proxy.url).port);
      const token = (await raw(port, `PUT /latest/api/token HTTP/1.0\r\n${TTL}\r\n\r\n`)).body;
      proxies[level] = { proxy, port, token, metrics };
    }
    for (const level of ['debug', 'info'] as const) {
      const { port, token } = proxies[level];
      for (const c of CASES) answers[level].push(await raw(port, c.request.replaceAll('X-aws-ec2-metadata-token: T', `X-aws-ec2-metadata-token: ${token}`).replaceAll(':P', `:${port}`)));
    }
  }, 30_000);
  afterAll(async () => {
    await Promise.all(Object.values(proxies).map((p) => p.proxy.close()));
    await sim?.close();
  });

  CASES.forEach((c, i) => {
    it(`${c.name} → ${c.expected}, the same bytes at debug and info`, () => {
      const [debug, info] = [answers.debug[i]!, answers.info[i]!];
      expect(status(info)).toBe(c.expected);
      expect(debug.statusLine).toBe(info.statusLine);
      expect(debug.headers).toEqual(info.headers);
      expect(info.headers).toContain('server: EC2ws');
      if (c.tokenBody) expect(debug.body.length).toBe(info.body.length);
      else expect(debug.body).toBe(info.body);
    });
  });

  it('HEAD carries the GET headers, Content-Length included, and no body', () => {
    const head = answers.info[CASES.findIndex((c) => c.name.includes('HEAD'))]!;
    const get = answers.info[CASES.findIndex((c) => c.name === 'HTTP/1.0 credentials without Host')]!;
    expect(head.headers).toEqual(get.headers);
    expect(head.body).toBe('');
    expect(get.headers).toContain(`content-length: ${Buffer.byteLength(get.body)}`);
  });

  it('counts every refusal at the front, unparseable requests included', () => {
    const m = proxies.info.metrics;
    expect(m.count('request:token:PUT:403')).toBe(2);
    expect(m.count('request:credentials:GET:403')).toBe(2);
    expect(m.count('request:metadata:GET:403')).toBe(1);
    expect(m.count('request:token:PUT:400')).toBe(1);
    expect(m.count('request:credentials_list:GET:400')).toBe(1);
    expect(m.count('request:other:GET:400')).toBe(1);
    expect(m.count('request:other:other:400')).toBe(1);
    // The rebinding refusals never reached the token route.
    expect(m.count('tokenRejected:forwarded') + m.count('tokenRejected:bad_ttl')).toBe(0);
  });
});
