import { Agent, request } from 'node:http';
import { parseCredentialsDocument } from '../imds/credentials.js';
import { CREDENTIALS_PREFIX, TOKEN_HEADER, TOKEN_PATH, TOKEN_TTL_HEADER } from '../imds/protocol.js';

/**
 * Why a credential fetch failed. `bad_document` is a 200 whose body is not credentials (an
 * IMDS error document, malformed JSON): an SDK fails on it, so it is no completed fetch.
 * `not_started`: an open-loop arrival that found --max-clients fetches in flight; the process
 * it stands for got no credentials either, so it counts, with no latency and no request.
 */
export type FetchFailure = 'timeout' | 'throttled' | 'http_error' | 'connection_error' | 'bad_document' | 'not_started';

export const FETCH_FAILURES: readonly FetchFailure[] = ['timeout', 'throttled', 'http_error', 'connection_error', 'bad_document', 'not_started'];

export interface FetchResult {
  /** HTTP requests this fetch sent, each counted once whatever became of it. */
  requests: number;
  failure: FetchFailure | undefined;
  /** From the intended start (open loop: the schedule's), so a late start costs latency. */
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
 * ends the fetch, as it ends the SDK's attempt. `intendedStart` (performance.now() time) is
 * when the fetch was due; latency counts from it, not from when the generator got round to it.
 */
export async function fetchCredentialsLikeAFreshProcess(target: string, timeoutMs: number, intendedStart?: number): Promise<FetchResult> {
  // One socket for the whole fetch and none shared with another fetch: a new process.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const started = intendedStart ?? performance.now();
  let requests = 0;
  const send = (method: 'GET' | 'PUT', path: string, headers: Record<string, string>): Promise<Answer> =>
    new Promise<Answer>((resolve, reject) => {
      let deadline: NodeJS.Timeout | undefined;
      let settled = false;
      const settle = (outcome: Answer | FetchFailure) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        if (typeof outcome === 'string') reject(new RequestFailure(outcome));
        else resolve(outcome);
      };
      const req = request(`${target}${path}`, { method, headers, agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => settle({ status: res.statusCode ?? 0, body }));
        // The connection died mid-answer (reset, truncated body): not a timeout.
        res.on('error', () => settle('connection_error'));
        res.on('close', () => {
          if (!res.complete) settle('connection_error');
        });
      });
      req.on('error', () => settle('connection_error'));
      // An absolute deadline, like curl's: an answer that trickles in still times out.
      deadline = setTimeout(() => {
        settle('timeout');
        req.destroy();
      }, timeoutMs);
      requests++;
      req.end();
    }).then((answer) => {
      if (answer.status === 429) throw new RequestFailure('throttled');
      if (answer.status !== 200) throw new RequestFailure('http_error');
      return answer;
    });

  let failure: FetchFailure | undefined;
  try {
    const token = (await send('PUT', TOKEN_PATH, { [TOKEN_TTL_HEADER]: '21600' })).body;
    const auth = { [TOKEN_HEADER]: token };
    const role = (await send('GET', `${CREDENTIALS_PREFIX}/`, auth)).body.split('\n')[0] ?? '';
    const document = (await send('GET', `${CREDENTIALS_PREFIX}/${encodeURIComponent(role)}`, auth)).body;
    if (parseCredentialsDocument(document).kind !== 'credentials') failure = 'bad_document';
  } catch (error) {
    // Anything else (a token the HTTP layer refuses as a header value) is no answer either.
    failure = error instanceof RequestFailure ? error.failure : 'connection_error';
  } finally {
    agent.destroy();
  }
  return { requests, failure, latencyMs: performance.now() - started };
}
