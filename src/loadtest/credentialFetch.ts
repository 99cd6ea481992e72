import { Agent, request } from 'node:http';
import { CREDENTIALS_PREFIX, TOKEN_HEADER, TOKEN_PATH, TOKEN_TTL_HEADER } from '../imds/protocol.js';

export type FetchFailure = 'timeout' | 'throttled' | 'http_error' | 'connection_error';

export interface FetchResult {
  /** HTTP requests this fetch sent, each counted once whatever became of it. */
  requests: number;
  failure: FetchFailure | undefined;
  latencyMs: number;
}

interface Answer {
  status: number;
  body: string;
}

class RequestFailure extends Error {
  constructor(readonly failure: FetchFailure) {
    super(failure);
  }
}

/**
 * What a fresh SDK process does for credentials: a new connection, PUT a token, GET the role
 * list, GET the role's credentials, each request with the SDKs' timeout. The first failure
 * ends the fetch, as it ends the SDK's attempt.
 */
export async function fetchCredentialsLikeAFreshProcess(target: string, timeoutMs: number): Promise<FetchResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const started = performance.now();
  let requests = 0;
  const send = (method: 'GET' | 'PUT', path: string, headers: Record<string, string>): Promise<Answer> => {
    requests++;
    return new Promise<Answer>((resolve, reject) => {
      const req = request(`${target}${path}`, { method, headers, agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => {
          clearTimeout(deadline);
          resolve({ status: res.statusCode ?? 0, body });
        });
        res.on('error', () => undefined);
      });
      // An absolute deadline, like curl's: an answer that trickles in still times out.
      const deadline = setTimeout(() => {
        req.destroy();
        reject(new RequestFailure('timeout'));
      }, timeoutMs);
      req.on('error', () => {
        clearTimeout(deadline);
        reject(new RequestFailure('connection_error'));
      });
      req.end();
    }).then((answer) => {
      if (answer.status === 429) throw new RequestFailure('throttled');
      if (answer.status !== 200) throw new RequestFailure('http_error');
      return answer;
    });
  };

  let failure: FetchFailure | undefined;
  try {
    const token = (await send('PUT', TOKEN_PATH, { [TOKEN_TTL_HEADER]: '21600' })).body;
    const auth = { [TOKEN_HEADER]: token };
    const role = (await send('GET', `${CREDENTIALS_PREFIX}/`, auth)).body.split('\n')[0] ?? '';
    await send('GET', `${CREDENTIALS_PREFIX}/${encodeURIComponent(role)}`, auth);
  } catch (error) {
    failure = error instanceof RequestFailure ? error.failure : 'connection_error';
  } finally {
    agent.destroy();
  }
  return { requests, failure, latencyMs: performance.now() - started };
}
