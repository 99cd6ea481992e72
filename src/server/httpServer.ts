import { createServer, ServerResponse, type RequestListener, type Server } from 'node:http';
import { Server as NetServer, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ListenAddress } from '../config.js';

export interface HttpServerOptions {
  maxConnections?: number;
  /** Answers requests node:http cannot parse (its default writes a bare status line). */
  clientError?: (error: Error & { code?: string }, socket: Duplex) => void;
}

/** Limits that keep one misbehaving client from tying up the proxy (slow-loris, huge headers). */
const SERVER_LIMITS = {
  maxHeaderSize: 16 * 1024,
  headersTimeout: 10_000,
  requestTimeout: 15_000,
  keepAliveTimeout: 5_000,
  // The front door answers an HTTP/1.1 request without Host itself, IMDS-style and counted.
  requireHostHeader: false,
};

/** Servers that are shutting down, and the flag their responses read. */
const drainFlags = new WeakMap<Server, { draining: boolean }>();

/**
 * Responses that, once their server is draining, tell the client not to reuse the
 * connection. Checked when the headers go out, so it also reaches requests that were
 * already in flight when the shutdown began; costs one property read per response.
 */
function drainAwareResponse(flag: { draining: boolean }): typeof ServerResponse {
  class DrainAwareResponse extends ServerResponse {}
  const plainWriteHead = ServerResponse.prototype.writeHead as (this: ServerResponse, ...args: unknown[]) => ServerResponse;
  (DrainAwareResponse.prototype as unknown as { writeHead: typeof plainWriteHead }).writeHead = function (this: ServerResponse, ...args: unknown[]) {
    if (flag.draining && !this.headersSent) this.setHeader('connection', 'close');
    return plainWriteHead.apply(this, args);
  };
  return DrainAwareResponse as typeof ServerResponse;
}

/** A node:http server running `listener` (the front door, or a bare hono app), listening on `address`. */
export async function listen(listener: RequestListener, address: ListenAddress, options: HttpServerOptions = {}): Promise<Server> {
  const flag = { draining: false };
  const server = createServer({ ...SERVER_LIMITS, ServerResponse: drainAwareResponse(flag) }, listener);
  if (options.clientError !== undefined) server.on('clientError', options.clientError);
  drainFlags.set(server, flag);
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
 *
 * No request a client has sent is reset, as far as HTTP/1.1 allows:
 * - the listener closes first, so a new connection is refused at connect, cleanly;
 * - every answer from then on, including those to requests already in flight, carries
 *   `Connection: close`, and the server closes the connection after it: a keep-alive
 *   client learns from the answer itself not to send on that connection again;
 * - connections idle at that moment are left open for a short while (node's own close()
 *   would destroy them at once, resetting any request already on its way over one of
 *   them); a busy client sends on its connection within that time and gets its answer
 *   and the `Connection: close`; connections still idle after it belong to clients that
 *   are not sending, and are closed.
 * Only what is still open at `graceMs` is cut.
 */
export function closeGracefully(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const flag = drainFlags.get(server);
    if (flag !== undefined) flag.draining = true;
    const idleDrainMs = Math.min(IDLE_DRAIN_MS, graceMs / 4);
    const sweep = setTimeout(function sweepIdle() {
      server.closeIdleConnections();
      // Keep sweeping: a connection whose answer had already started when draining began
      // went out keep-alive, and becomes idle only when that answer ends.
      sweep.refresh();
    }, idleDrainMs);
    const force = setTimeout(() => server.closeAllConnections(), graceMs);
    sweep.unref();
    force.unref();
    // net.Server's close, not http.Server's: stop accepting without node's immediate sweep
    // of idle keep-alive connections (see above).
    NetServer.prototype.close.call(server, () => {
      clearTimeout(sweep);
      clearTimeout(force);
      resolve();
    });
  });
}

/** How long connections idle at shutdown are given to send one more request. */
const IDLE_DRAIN_MS = 500;
