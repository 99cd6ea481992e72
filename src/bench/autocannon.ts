import autocannon from 'autocannon';

export interface CannonResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  total: number;
  errors: number;
  non2xx: number;
}

/**
 * One autocannon run, keep-alive connections, bounded by `seconds` or by `amount` requests
 * (and then by a generous time guard as well).
 */
export async function cannon(options: {
  url: string;
  method?: 'GET' | 'PUT';
  headers?: Record<string, string>;
  connections: number;
  seconds?: number;
  amount?: number;
}): Promise<CannonResult> {
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        method: options.method ?? 'GET',
        headers: options.headers ?? {},
        connections: options.connections,
        ...(options.amount !== undefined ? { amount: options.amount } : { duration: options.seconds ?? 5 }),
      },
      (error, result) => {
        clearTimeout(guard);
        if (error) reject(error);
        else resolve(result);
      },
    );
    const guard = setTimeout(() => instance.stop(), 600_000);
  });
  return {
    requestsPerSecond: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    total: result.requests.total,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}
