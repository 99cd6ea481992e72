import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { FORWARDED_FOR_HEADER, TOKEN_HEADER, TOKEN_TTL_HEADER } from '../imds/protocol.js';
import { routeLabelOf } from '../server/routeLabel.js';
import type { ServedCounters } from './counters.js';
import { answerImdsRequest, type ImdsModel } from './imdsRoutes.js';
import { Responder } from './responder.js';
import type { TokenBucket } from './tokenBucket.js';

export interface SimulatorState extends ImdsModel {
  counters: ServedCounters;
  bucket: TokenBucket | undefined;
  throttleMode: 'drop' | '429';
  /** Sockets of requests held without an answer (throttle mode drop); destroyed on close. */
  held: Set<Socket>;
}

/**
 * The simulated IMDS on plain node:http, deliberately: its faults live on the wire
 * (requests that never get an answer, connections reset mid-body, bodies that dribble),
 * which a framework built around complete Request/Response objects cannot express.
 * Order of events per request: reset when down, throttle, random 500, added latency, then
 * the answer, with the wire faults applied to credentials documents.
 */
export function createImdsHandler(state: SimulatorState): (req: IncomingMessage, res: ServerResponse) => void {
  const answer = (req: IncomingMessage, path: string, responder: Responder) => {
    const header = (name: string) => {
      const value = req.headers[name];
      return Array.isArray(value) ? value.join(', ') : value;
    };
    const reply = answerImdsRequest(state, {
      method: req.method ?? 'GET',
      path,
      token: req.headers[TOKEN_HEADER],
      ttl: header(TOKEN_TTL_HEADER),
      forwardedFor: req.headers[FORWARDED_FOR_HEADER] !== undefined,
    });
    if (reply.kind === 'error') return responder.fail(reply.status, reply.headers);
    if (reply.kind === 'text') return responder.send(reply.status, reply.body, reply.headers);
    const { faults } = state;
    if (req.method === 'GET' && faults.resetMidBody) return responder.resetMidBody(reply.body);
    if (req.method === 'GET' && faults.slowBodyMs > 0) return responder.dribble(reply.body, faults.slowBodyMs);
    return responder.send(200, reply.body);
  };

  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const responder = new Responder(req, res, routeLabelOf(path), state.counters);
    const { faults, bucket } = state;
    if (faults.down) return responder.reset();
    if (bucket !== undefined && !bucket.tryTake()) {
      if (state.throttleMode === '429') return responder.fail(429);
      // IMDS drops what exceeds its allowance: the client hears nothing and times out.
      return responder.hold(state.held);
    }
    if (faults.errorRate > 0 && Math.random() < faults.errorRate) return responder.fail(500);
    if (faults.latencyMs <= 0) return answer(req, path, responder);
    const timer = setTimeout(() => answer(req, path, responder), faults.latencyMs);
    res.once('close', () => clearTimeout(timer));
  };
}
