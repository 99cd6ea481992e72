import { request } from 'node:http';

export type CallResult = { status: number; body: string; headers: Record<string, unknown> } | { error: string };

/**
 * One request on a fresh connection that gives up `timeoutMs` after it started, like an SDK.
 * node:http rather than fetch: the fault tests need the socket-level outcome (ECONNRESET,
 * 'aborted', a timeout) as its own code. Loopback URLs only.
 */
export function call(url: string, method = 'GET', headers: Record<string, string> = {}, timeoutMs = 1000): Promise<CallResult> {
  return new Promise((resolve) => {
    const deadline = setTimeout(() => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })), timeoutMs);
    const done = (r: CallResult) => {
      clearTimeout(deadline);
      resolve(r);
    };
    const req = request(url, { method, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => done({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', (e) => done({ error: (e as NodeJS.ErrnoException).code ?? e.message }));
    });
    req.on('error', (e) => done({ error: (e as NodeJS.ErrnoException).code ?? e.message }));
    req.end();
  });
}

export const statusOf = (r: CallResult): number | string => ('status' in r ? r.status : r.error);
export const bodyOf = (r: CallResult): string => ('body' in r ? r.body : '');

export const TTL_HEADER = 'x-aws-ec2-metadata-token-ttl-seconds';
export const TOKEN_HEADER = 'x-aws-ec2-metadata-token';

export async function fetchToken(baseUrl: string, ttl = '300'): Promise<string> {
  const r = await call(`${baseUrl}/latest/api/token`, 'PUT', { [TTL_HEADER]: ttl });
  if (statusOf(r) !== 200) throw new Error(`token PUT answered ${statusOf(r)}`);
  return bodyOf(r);
}
