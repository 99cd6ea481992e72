import { Agent, request } from 'node:http';

/**
 * The start-up yardstick for credential-process: the least a node:http script can do to
 * get credentials from the proxy (token, role list, the role's document on one connection),
 * with no argument checks and no output format. `node dist/bench/minimalClient.js URL`.
 */
const endpoint = process.argv[2] ?? 'http://127.0.0.1:8169';
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function call(method: string, path: string, headers: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(`${endpoint}${path}`, { method, headers, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${path}: ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

const token = await call('PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '300' });
const list = '/latest/meta-data/iam/security-credentials/';
const role = (await call('GET', list, { 'x-aws-ec2-metadata-token': token })).split('\n')[0];
process.stdout.write(await call('GET', `${list}${role}`, { 'x-aws-ec2-metadata-token': token }));
agent.destroy();
