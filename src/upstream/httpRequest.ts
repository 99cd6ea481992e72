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
 * One HTTP exchange with IMDS, every failure classified as an UpstreamError.
 * The timeout covers the body too: a server that sends headers and then dribbles the body
 * is as useless to a waiting SDK as one that never answers.
 */
export async function httpRequest(options: HttpRequestOptions): Promise<UpstreamResponse> {
  if (options.signal?.aborted) throw stoppedError();
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  let response: Response;
  try {
    response = await fetch(options.url, {
      method: options.method,
      headers: options.headers,
      signal,
      redirect: 'manual',
    });
  } catch (error) {
    if (options.signal?.aborted) throw stoppedError();
    throw classifyFetchError(error, options.timeoutMs);
  }
  let body: string;
  try {
    body = await readBody(response, options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
  } catch (error) {
    if (error instanceof UpstreamError) throw error;
    if (options.signal?.aborted) throw stoppedError();
    throw classifyFetchError(error, options.timeoutMs);
  }
  return {
    status: response.status,
    body,
    contentType: response.headers.get('content-type') ?? undefined,
    tokenTtl: response.headers.get('x-aws-ec2-metadata-token-ttl-seconds') ?? undefined,
    location: response.headers.get('location') ?? undefined,
  };
}

async function readBody(response: Response, maxBytes: number): Promise<string> {
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => {});
      throw new UpstreamError('invalid_response', `response body larger than ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function classifyFetchError(error: unknown, timeoutMs: number): UpstreamError {
  const name = (error as { name?: unknown } | null)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new UpstreamError('timeout', `no complete answer within ${timeoutMs} ms`);
  }
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  const code = typeof cause?.code === 'string' ? cause.code : undefined;
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'ETIMEDOUT') {
    return new UpstreamError('timeout', `timed out (${code})`);
  }
  const detail = code ?? (typeof cause?.message === 'string' ? cause.message : String((error as Error)?.message ?? error));
  return new UpstreamError('network_error', `connection failed (${detail})`);
}
