import { createServer, ServerResponse, type RequestListener, type Server } from 'node:http';
import { Server as NetServer, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ListenAddress } from '../config/proxyConfig.js';
import { listenInherited, type InheritedSocket } from './inheritedListeners.js';

export interface HttpServerOptions {
  maxConnections?: number;
  /** Answers requests node:http cannot parse (its default writes a bare status line). */
  clientError?: (error: Error & { code?: string }, socket: Duplex) => void;
  /** Accept on this socket passed by a supervisor (systemd) instead of binding; it must be bound to the address given. */
  inherited?: InheritedSocket;
  /** The option that set the address, for the error if an inherited socket is bound elsewhere. */
  listenOption?: string;
}

/**
 * How long an idle keep-alive connection stays open. Short, because a drain waits for it
 * (see closeGracefully); loopback reconnects cost microseconds. node advertises it as
 * `Keep-Alive: timeout=2` (whole seconds, rounded down), closes after it plus a second of its
 * own (3.5 s), and node's agent, the JS SDK's, stops reusing a connection a second before the
 * advertised timeout (1 s): the client's last request is long in when the server closes.
 */
export const KEEP_ALIVE_MS = 2_500;

/** Limits that keep one misbehaving client from tying up the proxy (slow-loris, huge headers). */
const SERVER_LIMITS = {
  maxHeaderSize: 16 * 1024,
  headersTimeout: 10_000,
  requestTimeout: 15_000,
  keepAliveTimeout: KEEP_ALIVE_MS,
  // The front door answers an HTTP/1.1 request without Host itself, IMDS-style and counted.
  requireHostHeader: false,
};

/**
 * What the drain needs to know about a server. Nothing is recorded per request: a response
 * only reads `draining`, and what an inherited server's drain asks of its open connections is
 * read off them when it asks (see onlyEndingConnectionsLeft).
 */
interface DrainState {
  /** Accepting on a socket a supervisor passed (and keeps open), not one bound here. */
  inherited: boolean;
  draining: boolean;
  /** Inherited servers only: every open connection, with when it was accepted (performance.now()). */
  open: Map<Socket, number>;
  /** Inherited servers only: connections answered `Connection: close` since the drain began. */
  ending: Set<Socket>;
  /** Called, while draining, when a connection closes or is answered `Connection: close`. */
  onConnectionEnding: (() => void) | undefined;
}

/** A connection accepted this recently is "fresh": its request and answer are moments away. */
const FRESH_CONNECTION_MS = 100;
/** An inherited socket stops accepting this long before the drain's deadline at the latest. */
const STOP_ACCEPTING_BEFORE_DEADLINE_MS = 1_000;

const drainStates = new WeakMap<Server, DrainState>();

/**
 * Responses that, once their server is draining, tell the client not to reuse the
 * connection. Checked when the headers go out, so it also reaches requests that were already
 * in flight when the shutdown began. Until then it costs one property read per response. The
 * bookkeeping it replaced (a symbol property and a close listener on every socket, a Set entry
 * per kept-alive connection) cost a fresh process's three requests about a quarter more server
 * CPU: a property added to sockets gives them a second shape in all of node's socket code.
 */
function drainAwareResponse(state: DrainState): typeof ServerResponse {
  class DrainAwareResponse extends ServerResponse {}
  const plainWriteHead = ServerResponse.prototype.writeHead as (this: ServerResponse, a: unknown, b: unknown, c: unknown) => ServerResponse;
  (DrainAwareResponse.prototype as unknown as { writeHead: typeof plainWriteHead }).writeHead = function (this: ServerResponse, a: unknown, b: unknown, c: unknown) {
    if (!state.draining) return plainWriteHead.call(this, a, b, c);
    if (!this.headersSent) this.setHeader('connection', 'close');
    const response = plainWriteHead.call(this, a, b, c);
    const socket = this.socket;
    if (state.inherited && socket !== null) {
      state.ending.add(socket);
      state.onConnectionEnding?.();
    }
    return response;
  };
  return DrainAwareResponse as typeof ServerResponse;
}

/**
 * While an inherited server drains: whether the process would exit soon if it stopped
 * accepting now, i.e. every open connection was answered `Connection: close` or is fresh.
 * One kept alive, silent since it connected, or waiting long for its answer keeps the
 * process alive anyway, so it may as well go on accepting. A connection is idle after a
 * keep-alive answer exactly when node has armed its keep-alive timer on it, which shows as
 * `socket.timeout` (node clears it when the next request arrives; `server.timeout` is 0).
 */
function onlyEndingConnectionsLeft(state: DrainState): boolean {
  const freshSince = performance.now() - FRESH_CONNECTION_MS;
  for (const [socket, acceptedAt] of state.open) {
    if (state.ending.has(socket)) continue;
    if ((socket.timeout ?? 0) > 0 || acceptedAt < freshSince) return false;
    // An answer still being written that said keep-alive (its head went out before the drain
    // began): the timer is armed only once it finishes, and the connection stays open after it.
    const answering = (socket as Socket & { _httpMessage?: { headersSent: boolean; _last: boolean } | null })._httpMessage;
    if (answering?.headersSent === true && !answering._last) return false;
  }
  return true;
}

/** A node:http server running `listener` (the front door, or a bare hono app), listening on `address`. */
export async function listen(listener: RequestListener, address: ListenAddress, options: HttpServerOptions = {}): Promise<Server> {
  const state: DrainState = { inherited: options.inherited !== undefined, draining: false, open: new Map(), ending: new Set(), onConnectionEnding: undefined };
  const server = createServer({ ...SERVER_LIMITS, ServerResponse: drainAwareResponse(state) }, listener);
  if (options.clientError !== undefined) server.on('clientError', options.clientError);
  drainStates.set(server, state);
  server.keepAliveTimeout = SERVER_LIMITS.keepAliveTimeout;
  if (options.maxConnections !== undefined) server.maxConnections = options.maxConnections;
  if (options.inherited !== undefined) {
    // One shared listener, not a closure per connection.
    function onClose(this: Socket): void {
      state.open.delete(this);
      state.ending.delete(this);
      if (state.draining) state.onConnectionEnding?.();
    }
    server.on('connection', (socket: Socket) => {
      state.open.set(socket, performance.now());
      socket.on('close', onClose);
    });
    await listenInherited(server, options.inherited, address, options.listenOption ?? '--listen');
    return server;
  }
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
 * Drains `server` so that no request a client sends fails, then closes it; resolves within
 * `graceMs` whatever clients do. When a connection may close and when to stop accepting:
 * docs/restarts.md, The drain.
 */
export function closeGracefully(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    let accepting = true;
    const stopAccepting = () => {
      if (!accepting) return;
      accepting = false;
      // net.Server's close, not http.Server's: the latter also destroys idle keep-alive
      // connections at once, which is exactly the race this avoids.
      NetServer.prototype.close.call(server, () => {
        clearTimeout(force);
        resolve();
      });
    };
    const force = setTimeout(() => {
      stopAccepting();
      server.closeAllConnections();
    }, graceMs);
    force.unref();
    const state = drainStates.get(server);
    if (state === undefined) return stopAccepting();
    state.draining = true;
    if (!state.inherited) return stopAccepting();
    // Inherited: accept while this process lives anyway; stop once it is about to exit.
    const stopIfExitNear = () => {
      if (onlyEndingConnectionsLeft(state)) stopAccepting();
    };
    state.onConnectionEnding = stopIfExitNear;
    setTimeout(stopAccepting, Math.max(0, graceMs - STOP_ACCEPTING_BEFORE_DEADLINE_MS)).unref();
    stopIfExitNear();
  });
}
