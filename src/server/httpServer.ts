import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import type { Hono } from 'hono';
import type { ListenAddress } from '../config.js';
import { SERVER_HEADER_VALUE } from '../imds/protocol.js';

export interface HttpServerOptions {
  /** Return false to refuse a client by its address before any route runs. */
  allowSource?: (address: string | undefined) => boolean;
  maxConnections?: number;
}

/** Limits that keep one misbehaving client from tying up the proxy (slow-loris, huge headers). */
const SERVER_LIMITS = {
  maxHeaderSize: 16 * 1024,
  headersTimeout: 10_000,
  requestTimeout: 15_000,
  keepAliveTimeout: 5_000,
};

/** A node:http server running a hono app, listening on `address`. */
export async function listen(app: Hono, address: ListenAddress, options: HttpServerOptions = {}): Promise<Server> {
  const handle = getRequestListener(app.fetch);
  const { allowSource } = options;
  const listener =
    allowSource === undefined
      ? handle
      : (req: IncomingMessage, res: ServerResponse) => {
          if (allowSource(req.socket.remoteAddress)) return handle(req, res);
          res.writeHead(403, { 'content-type': 'text/plain', server: SERVER_HEADER_VALUE, connection: 'close' });
          res.end('403 - Forbidden: source address not allowed\n');
        };
  const server = createServer(SERVER_LIMITS, listener);
  server.keepAliveTimeout = SERVER_LIMITS.keepAliveTimeout;
  if (options.maxConnections !== undefined) server.maxConnections = options.maxConnections;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

export function boundPort(server: Server): number {
  return (server.address() as AddressInfo).port;
}

/**
 * Stops accepting, lets requests in flight finish, then closes what is left. Resolves
 * within `graceMs` whatever clients do.
 */
export function closeGracefully(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => server.closeAllConnections(), graceMs);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}
