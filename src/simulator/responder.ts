import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { SERVER_HEADER_VALUE, TEXT_PLAIN } from '../imds/protocol.js';
import type { RouteLabel } from '../metrics/recorder.js';
import type { ServedCounters, SimulatorOutcome } from './counters.js';

const OUTCOME_BY_STATUS: Record<number, SimulatorOutcome> = {
  200: 'ok',
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  429: 'throttled',
  500: 'error',
};

/**
 * Every way the simulator can answer one request, on the wire: a full answer, a reset, no
 * answer at all, a dribbled body, half a body. Each records exactly one outcome, so
 * `GET /counters` counts every request once whatever happened to it; a request the client
 * abandons before any outcome (during added latency) counts as `abandoned`.
 */
export class Responder {
  private counted = false;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly route: RouteLabel,
    private readonly counters: ServedCounters,
  ) {
    res.once('close', () => this.record('abandoned'));
  }

  /** Status, headers and body as IMDS sends them; HEAD gets the headers alone. */
  send(status: number, body: string, headers: Record<string, string> = {}): void {
    this.record(OUTCOME_BY_STATUS[status] ?? 'error');
    this.res.writeHead(status, this.headers(status >= 400 ? 'text/html' : TEXT_PLAIN, body, headers));
    this.res.end(this.req.method === 'HEAD' ? undefined : body);
  }

  /** IMDS's error pages are small HTML documents. */
  fail(status: number, headers: Record<string, string> = {}): void {
    this.send(status, `<html><body><h1>${status}</h1></body></html>\n`, headers);
  }

  /** The connection is reset before any answer: IMDS unreachable. */
  reset(): void {
    this.record('reset');
    this.req.socket.destroy();
  }

  /**
   * No answer at all, as IMDS drops traffic past its allowance: the client times out. The
   * socket goes into `held` so that closing the simulator can destroy it.
   */
  hold(held: Set<Socket>): void {
    this.record('dropped');
    const socket = this.req.socket;
    held.add(socket);
    socket.once('close', () => held.delete(socket));
  }

  /** Headers at once, then the body one character every `everyMs`. */
  dribble(body: string, everyMs: number): void {
    this.record('ok');
    this.res.writeHead(200, this.headers(TEXT_PLAIN, body));
    let sent = 0;
    const timer = setInterval(() => {
      if (this.res.destroyed || sent >= body.length) {
        clearInterval(timer);
        if (!this.res.destroyed) this.res.end();
        return;
      }
      this.res.write(body.slice(sent, ++sent));
    }, everyMs);
    this.res.once('close', () => clearInterval(timer));
  }

  /** Headers and the first half of the body, then the connection is reset. */
  resetMidBody(body: string): void {
    this.record('reset');
    this.res.writeHead(200, this.headers(TEXT_PLAIN, body));
    this.res.write(body.slice(0, body.length >> 1), () => this.req.socket.destroy());
  }

  private headers(contentType: string, body: string, extra: Record<string, string> = {}): Record<string, string> {
    return {
      'content-type': contentType,
      server: SERVER_HEADER_VALUE,
      'content-length': String(Buffer.byteLength(body)),
      ...extra,
    };
  }

  private record(outcome: SimulatorOutcome): void {
    if (this.counted) return;
    this.counted = true;
    this.counters.count(this.route, outcome);
  }
}
