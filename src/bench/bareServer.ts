import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The benchmark's yardstick: a bare node:http server answering the proxy's exact bytes and
 * headers. `node dist/bench/bareServer.js BODY_FILE` prints its port and serves until killed.
 */
const body = readFileSync(process.argv[2] ?? '/dev/null');
const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', server: 'EC2ws', 'content-length': body.length });
  res.end(body);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
