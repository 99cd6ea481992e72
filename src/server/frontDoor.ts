import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { getRequestListener } from '@hono/node-server';
import { SERVER_HEADER_VALUE, TOKEN_HEADER } from '../imds/protocol.js';
import type { RouteLabel } from '../metrics/recorder.js';
import { createProxyApp, logInternalError } from './app.js';
import { clientTokenCheck } from './clientTokenGuard.js';
import type { ProxyServices } from './context.js';
import { createHostGuard } from './hostGuard.js';
import { asResponse, errorAnswer, errorPage, INTERNAL_ERROR, METADATA_METHOD_NOT_ALLOWED, reasonPhrase, type Answer } from './responses.js';
import { credentialsRoute, roleListAnswer } from './routes/credentials.js';
import { extendedCredentialsRoute } from './routes/extendedCredentials.js';
import { targetRouter, type RoutedTarget } from './targetRoutes.js';
import { tokenRoute } from './routes/token.js';

export interface FrontDoorOptions {
  /** `--allow-cidr`: false refuses the client by its address before anything else. */
  allowSource?: (address: string | undefined) => boolean;
  /** `--allow-host`: DNS names besides `localhost` that clients may use in `Host`. */
  allowHosts?: readonly string[];
}

export interface FrontDoor {
  /** node:http's request listener: every request on the IMDS listener comes through here. */
  listener(req: IncomingMessage, res: ServerResponse): void;
  /** node:http's `clientError`: requests too malformed to parse, answered and counted here too. */
  clientError(error: Error & { code?: string }, socket: Duplex): void;
  /**
   * The same door without a socket, as hono's `app.request`: the same decisions, routes and
   * metrics, answered as a fetch Response. Tests and the token-flood fixture use it.
   */
  request(path: string, init?: InProcessInit): Promise<Response>;
}

export interface InProcessInit {
  method?: string;
  headers?: Record<string, string> | Headers;
  body?: string;
  remoteAddress?: string;
}

/** What the door decided: an answer now, one later, or a URL to hand the hono app. */
type Outcome = Answer | Promise<Answer> | string;

const BAD_REQUEST = errorAnswer(400);
const FORBIDDEN = errorAnswer(403);
const NOT_FOUND = errorAnswer(404);
// After an --allow-cidr refusal the connection is closed: that client has nothing more to ask.
const SOURCE_REFUSED = errorAnswer(403, { connection: 'close' });

/**
 * The proxy's one front door: every request passes the same checks, in order, in one place,
 * then reaches exactly one handler; docs/architecture.md draws the steps.
 */
export function createFrontDoor(services: ProxyServices, options: FrontDoorOptions = {}): FrontDoor {
  const { metrics, logger, credentials, extendedCredentials: extendedMode } = services;
  const app = createProxyApp(services);
  const honoListener = getRequestListener(app.fetch);
  const { allowSource } = options;
  const hostGuard = createHostGuard(options.allowHosts ?? []);
  const checkToken = clientTokenCheck(services);
  const token = tokenRoute(services);
  const roleCredentials = credentialsRoute(services);
  const extendedRoleCredentials = extendedCredentialsRoute(services);
  const logRequests = logger.isLevelEnabled('debug');
  const routeOf = targetRouter();
  let rebindingWarned = false;

  /** GET and HEAD with a good token pass (undefined); anything else gets its answer. */
  const guard = (method: string, headers: IncomingHttpHeaders): Answer | undefined =>
    method === 'GET' || method === 'HEAD' ? checkToken(headers[TOKEN_HEADER]) : METADATA_METHOD_NOT_ALLOWED;

  function decide(method: string, routed: RoutedTarget, headers: IncomingHttpHeaders, http11: boolean, remoteAddress: string | undefined): Outcome {
    if (allowSource !== undefined && !allowSource(remoteAddress)) return SOURCE_REFUSED;
    const { target, core } = routed;
    if (target === undefined) return BAD_REQUEST;
    // RFC 9112: an HTTP/1.1 request must name a Host; HTTP/1.0 clients (still about) need not.
    if (http11 && headers.host === undefined) return BAD_REQUEST;
    const verdict = hostGuard(headers);
    if (verdict === 'malformed') return BAD_REQUEST;
    if (verdict === 'rebinding') {
      warnRebindingOnce();
      return FORBIDDEN;
    }

    switch (core) {
      case 'token':
        return token(method, headers);
      case 'role_list':
        return guard(method, headers) ?? roleListAnswer(credentials);
      case 'role_credentials':
        return guard(method, headers) ?? roleCredentials(routed.role);
      case 'extended_role_list':
      case 'extended_role_credentials': {
        if (extendedMode === 'passthrough') break;
        const refusal = guard(method, headers);
        if (refusal !== undefined) return refusal;
        if (extendedMode === 'off') return NOT_FOUND;
        return core === 'extended_role_list' ? roleListAnswer(credentials) : extendedRoleCredentials(routed.role);
      }
    }
    return target.url;
  }

  function warnRebindingOnce(): void {
    if (rebindingWarned) return;
    rebindingWarned = true;
    logger.warn(
      { event: 'rebinding_refused' },
      'refused a request naming a DNS host, or carrying browser headers (DNS-rebinding guard); if the name is yours, allow it with --allow-host',
    );
  }

  function record(route: RouteLabel, method: string, status: number, started: number): void {
    const ms = performance.now() - started;
    metrics.request(route, method, status, ms / 1000);
    // Route label and status only: paths and headers are the client's, tokens among them.
    if (logRequests) logger.debug({ event: 'request', method, route, status, ms: Math.round(ms * 100) / 100 }, 'request');
  }

  function internalError(error: unknown): Answer {
    logInternalError(logger, error);
    return INTERNAL_ERROR;
  }

  function listener(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    const method = req.method ?? '';
    const routed = routeOf(req.url ?? '');
    const route = routed.route;
    let outcome: Outcome;
    try {
      // remoteAddress is a system call (getpeername): only --allow-cidr needs it.
      const address = allowSource === undefined ? undefined : req.socket.remoteAddress;
      outcome = decide(method, routed, req.headers, req.httpVersionMajor === 1 && req.httpVersionMinor >= 1, address);
    } catch (error) {
      outcome = internalError(error);
    }
    if (typeof outcome === 'string') {
      // The hono app gets the normalised target; Host was judged above and means nothing to it.
      req.url = outcome;
      req.headers.host = 'localhost';
      honoListener(req, res).then(
        () => record(route, method, res.statusCode, started),
        (error: unknown) => logInternalError(logger, error),
      );
    } else if (outcome instanceof Promise) {
      outcome.then(
        (answer) => reply(res, answer, route, method, started),
        (error: unknown) => reply(res, internalError(error), route, method, started),
      );
    } else {
      reply(res, outcome, route, method, started);
    }
  }

  function reply(res: ServerResponse, answer: Answer, route: RouteLabel, method: string, started: number): void {
    // HEAD: node sends the headers, Content-Length included, and drops the body itself.
    res.writeHead(answer.status, answer.headers);
    res.end(answer.body);
    record(route, method, answer.status, started);
  }

  function clientError(error: Error & { code?: string }, socket: Duplex): void {
    const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    // Nothing to answer on a reset, and nothing may be written into an answer already begun.
    if (error.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent === true) {
      socket.destroy();
      return;
    }
    const status =
      error.code === 'HPE_HEADER_OVERFLOW' ? 431
      : error.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW' ? 413
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408
      : 400;
    const page = errorPage(status);
    socket.end(
      // Header names as node writes every other answer's: lower-case.
      `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\ncontent-type: text/html\r\nserver: ${SERVER_HEADER_VALUE}\r\n` +
        `content-length: ${Buffer.byteLength(page)}\r\nconnection: close\r\n\r\n${page}`,
    );
    // Unparsed: no route or method to name.
    metrics.request('other', 'other', status, 0);
  }

  async function request(path: string, init: InProcessInit = {}): Promise<Response> {
    const started = performance.now();
    const method = init.method ?? 'GET';
    const headers: IncomingHttpHeaders = { host: 'localhost' };
    new Headers(init.headers).forEach((value, name) => (headers[name] = value));
    const routed = routeOf(path);
    const route = routed.route;
    let outcome: Outcome;
    try {
      outcome = decide(method, routed, headers, true, init.remoteAddress ?? '127.0.0.1');
    } catch (error) {
      outcome = internalError(error);
    }
    if (typeof outcome === 'string') {
      const res = await app.request(outcome, { method, headers: init.headers ?? {}, ...(init.body !== undefined ? { body: init.body } : {}) });
      record(route, method, res.status, started);
      return res;
    }
    const answer = await Promise.resolve(outcome).catch(internalError);
    record(route, method, answer.status, started);
    const res = asResponse(answer);
    return method === 'HEAD' ? new Response(null, { status: res.status, headers: res.headers }) : res;
  }

  return { listener, clientError, request };
}
