import * as http from 'node:http';
import { UpstreamError } from './errors.js';

export interface UpstreamResponse {
  readonly status: number;
  readonly body: string;
  readonly contentType: string | undefined;
  /** The session-token TTL header, present on answers to the token PUT. */
  readonly tokenTtl: string | undefined;
  /** A redirect's target, relayed to clients as IMDS sent it. */
  readonly location?: string | undefined;
}

export interface HttpRequestOptions {
  method: 'GET' | 'PUT';
  url: string;
  headers?: Record<string, string>;
  /** Covers the whole exchange: connect, headers and body. */
  timeoutMs: number;
  maxBodyBytes?: number;
  /** Aborts the exchange early (the proxy is stopping); see `stoppedError`. */
  signal?: AbortSignal;
  /** Connection reuse; node's global agent (keep-alive) unless given. */
  agent?: http.Agent;
}

/** How one HTTP exchange is made: `httpRequest`, or an in-memory upstream in tests. */
export type UpstreamTransport = (options: HttpRequestOptions) => Promise<UpstreamResponse>;

/**
 * What an exchange cut short by the proxy's own stop throws. Callers that see their stop
 * signal aborted neither count nor log it: IMDS did nothing wrong.
 */
export function stoppedError(): UpstreamError {
  return new UpstreamError('network_error', 'aborted: the proxy is stopping');
}

const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/**
 * One HTTP exchange with IMDS (or, for credential-process, the proxy), every failure an
 * UpstreamError; the timeout covers a dribbled body too. On node:http, not fetch: why in
 * docs/architecture.md.
 */
export async function httpRequest(options: HttpRequestOptions): Promise<UpstreamResponse> {
  if (options.signal?.aborted) throw stoppedError();
  const url = new URL(options.url);
  const transport = url.protocol === 'https:' ? await import('node:https') : http;
  const maxBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  return new Promise<UpstreamResponse>((resolve, reject) => {
    let request: http.ClientRequest | undefined;
    const timer = setTimeout(() => fail(new UpstreamError('timeout', `no complete answer within ${options.timeoutMs} ms`)), options.timeoutMs);
    const onStop = () => fail(stoppedError());
    options.signal?.addEventListener('abort', onStop, { once: true });
    const settle = () => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onStop);
    };
    function fail(error: UpstreamError): void {
      settle();
      reject(error);
      request?.destroy();
    }
    if (options.signal?.aborted) return onStop(); // aborted while node:https loaded
    try {
      request = transport.request(url, { method: options.method, headers: options.headers, agent: options.agent });
    } catch (error) {
      // A header value node refuses (its message names the header, never the value).
      fail(new UpstreamError('network_error', `request not sent (${firstLineOf(error)})`, undefined, { cause: error }));
      return;
    }
    request.on('error', (error) => fail(classifyNetworkError(error)));
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) fail(new UpstreamError('invalid_response', `response body larger than ${maxBytes} bytes`));
        else chunks.push(chunk);
      });
      response.on('end', () => {
        settle();
        resolve({
          status: response.statusCode ?? 0,
          body: Buffer.concat(chunks).toString('utf8'),
          contentType: response.headers['content-type'],
          tokenTtl: headerValue(response.headers['x-aws-ec2-metadata-token-ttl-seconds']),
          location: response.headers.location,
        });
      });
      response.on('error', (error) => fail(classifyNetworkError(error)));
      // Closed before the end: node may report it as an error above, or only as this.
      response.on('close', () => {
        if (!response.complete) fail(classifyNetworkError(Object.assign(new Error('connection closed mid-answer'), { code: 'ECONNRESET' })));
      });
    });
    request.end();
  });
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

function firstLineOf(error: unknown): string {
  return String((error as Error)?.message ?? error).split('\n')[0] ?? '';
}

function classifyNetworkError(error: unknown): UpstreamError {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ETIMEDOUT') return new UpstreamError('timeout', `timed out (${code})`, undefined, { cause: error });
  const detail = typeof code === 'string' ? code : firstLineOf(error);
  return new UpstreamError('network_error', `connection failed (${detail})`, undefined, { cause: error });
}
