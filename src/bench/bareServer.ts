import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { stopWhenParentGoes } from '../child/parentWatch.js';

/**
 * The benchmark's yardstick: a bare node:http server answering the proxy's exact bytes and
 * headers. `node dist/bench/bareServer.js BODY_FILE [ROLE]` prints its port and serves until
 * killed: the credentials document for every request, and with ROLE the rest of a fresh
 * SDK process's sequence too (a token of the proxy's length for the token PUT, ROLE for the
 * role list), so it does the same three answers a fresh process asks the proxy for.
 */
const body = readFileSync(process.argv[2] ?? '/dev/null');
const role = process.argv[3];
const token = 'A'.repeat(71);
const server = createServer((req, res) => {
  if (role !== undefined && req.url === '/latest/api/token') {
    res.writeHead(200, { 'content-type': 'text/plain', server: 'EC2ws', 'x-aws-ec2-metadata-token-ttl-seconds': '21600', 'content-length': token.length });
    res.end(token);
  } else if (role !== undefined && req.url === '/latest/meta-data/iam/security-credentials/') {
    res.writeHead(200, { 'content-type': 'text/plain', server: 'EC2ws', 'content-length': Buffer.byteLength(role) });
    res.end(role);
  } else {
    res.writeHead(200, { 'content-type': 'text/plain', server: 'EC2ws', 'content-length': body.length });
    res.end(body);
  }
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
stopWhenParentGoes();
