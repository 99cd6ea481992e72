import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { silentLogger } from '../../src/runtime/log.js';
import { noopMetrics } from '../../src/metrics/recorder.js';
import { UpstreamError } from '../../src/upstream/errors.js';
import type { HttpRequestOptions, UpstreamResponse } from '../../src/upstream/httpRequest.js';
import { ImdsClient } from '../../src/upstream/imdsClient.js';

/**
 * The proxy renews its upstream session token when 10% of its life is left (36
 * minutes of a 6 h token), but if that renewal PUT fails (a throttling blip: timeout or 429),
 * the GET it was for fails too, although the token in hand is valid for half an hour more and
 * IMDS would have answered it. Every request fails this way until a renewal succeeds. A failed
 * renewal must fall back to the still-valid token.
 */
describe('a failed renewal of the upstream session token', () => {
  it('keeps using the current token while it is valid', async () => {
    const clock = new ManualClock();
    let putFails = false;
    const seen: string[] = [];
    const request = async (o: HttpRequestOptions): Promise<UpstreamResponse> => {
      seen.push(`${o.method} ${new URL(o.url).pathname}`);
      if (o.method === 'PUT') {
        if (putFails) throw new UpstreamError('timeout', 'scripted: token PUT timed out');
        return { status: 200, body: 'session-1', contentType: 'text/plain', tokenTtl: '21600' };
      }
      if (o.headers?.['x-aws-ec2-metadata-token'] !== 'session-1') return { status: 401, body: '', contentType: 'text/plain', tokenTtl: undefined };
      return { status: 200, body: 'i-0123456789abcdef0', contentType: 'text/plain', tokenTtl: undefined };
    };
    const client = new ImdsClient({
      baseUrl: 'http://127.0.0.1:9', timeoutMs: 1000, maxAttempts: 1, retryBaseMs: 1, retryMaxMs: 1,
      clock, metrics: noopMetrics, logger: silentLogger, request, sleep: async () => undefined,
    });
    expect((await client.get('/latest/meta-data/instance-id', 'metadata')).status).toBe(200);

    // 5.5 h on: inside the renewal window (10% of 6 h left), and IMDS is throttling token PUTs.
    clock.advance(5.5 * 3600_000);
    putFails = true;
    const answer = await client.get('/latest/meta-data/instance-id', 'metadata').catch((e: unknown) => e);
    expect(answer instanceof UpstreamError ? `failed: ${answer.kind}` : (answer as UpstreamResponse).status).toBe(200);
    // The renewal is retried after a backoff, not on every request.
    seen.length = 0;
    await client.get('/latest/meta-data/instance-id', 'metadata');
    expect(seen).toEqual(['GET /latest/meta-data/instance-id']);
    clock.advance(2 * 60_000);
    await client.get('/latest/meta-data/instance-id', 'metadata');
    expect(seen.slice(1)).toEqual(['PUT /latest/api/token', 'GET /latest/meta-data/instance-id']);
    // Once the token has actually expired, nothing but a successful PUT will do.
    clock.advance(3600_000);
    const expired = await client.get('/latest/meta-data/instance-id', 'metadata').catch((e: unknown) => e);
    expect(expired instanceof UpstreamError ? expired.kind : 'answered').toBe('timeout');
  });

  it('in IMDSv1 mode, a failed re-check of IMDSv2 keeps the tokenless requests that work', async () => {
    const clock = new ManualClock();
    let putTimesOut = false;
    const request = async (o: HttpRequestOptions): Promise<UpstreamResponse> => {
      if (o.method === 'PUT') {
        if (putTimesOut) throw new UpstreamError('timeout', 'scripted: token PUT timed out');
        return { status: 403, body: '', contentType: 'text/html', tokenTtl: undefined };
      }
      return { status: 200, body: 'i-0123456789abcdef0', contentType: 'text/plain', tokenTtl: undefined };
    };
    const client = new ImdsClient({
      baseUrl: 'http://127.0.0.1:9', timeoutMs: 1000, maxAttempts: 1, retryBaseMs: 1, retryMaxMs: 1,
      clock, metrics: noopMetrics, logger: silentLogger, request, sleep: async () => undefined,
    });
    expect((await client.get('/latest/meta-data/instance-id', 'metadata')).status).toBe(200);
    expect(client.session.mode).toBe('v1');
    // The 10-minute re-check of IMDSv2 comes during a throttling blip.
    clock.advance(11 * 60_000);
    putTimesOut = true;
    const answer = await client.get('/latest/meta-data/instance-id', 'metadata').catch((e: unknown) => e);
    expect(answer instanceof UpstreamError ? `failed: ${answer.kind}` : (answer as UpstreamResponse).status).toBe(200);
  });
});

