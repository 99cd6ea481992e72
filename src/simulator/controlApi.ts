import type { IncomingMessage, ServerResponse } from 'node:http';
import { NO_FAULTS, validateFaultsPatch, type Faults } from './faults.js';
import type { SimulatorState } from './imdsHandler.js';

const MAX_BODY_BYTES = 64 * 1024;

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify(body, null, 2)}\n`);
};

/**
 * The simulator's control API, on its own loopback port so that nothing reaching the IMDS
 * port can switch faults:
 *   GET /faults, PUT /faults (JSON merge), POST /faults/reset,
 *   GET /counters, POST /counters/reset, POST /rotate
 */
export function createControlHandler(
  state: SimulatorState,
  actions: { setFaults(patch: Partial<Faults>): void; rotate(): void },
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const route = `${req.method} ${(req.url ?? '/').split('?')[0]}`;
    switch (route) {
      case 'GET /faults':
        return json(res, 200, state.faults);
      case 'POST /faults/reset':
        actions.setFaults(NO_FAULTS);
        return json(res, 200, state.faults);
      case 'GET /counters':
        return json(res, 200, state.counters.snapshot());
      case 'POST /counters/reset':
        state.counters.reset();
        return json(res, 200, state.counters.snapshot());
      case 'POST /rotate':
        actions.rotate();
        return json(res, 200, { rotated: true });
      case 'PUT /faults': {
        let body = '';
        let tooLarge = false;
        req.setEncoding('utf8');
        req.on('data', (chunk: string) => {
          if (tooLarge) return;
          body += chunk;
          if (body.length > MAX_BODY_BYTES) tooLarge = true;
        });
        req.on('end', () => {
          if (tooLarge) return json(res, 413, { error: `body larger than ${MAX_BODY_BYTES} bytes` });
          let parsed: unknown;
          try {
            parsed = JSON.parse(body);
          } catch {
            return json(res, 400, { error: 'body is not JSON' });
          }
          const patch = validateFaultsPatch(parsed);
          if (typeof patch === 'string') return json(res, 400, { error: patch });
          actions.setFaults(patch);
          return json(res, 200, state.faults);
        });
        return;
      }
      default:
        return json(res, 404, { error: `no such control route: ${route}` });
    }
  };
}
