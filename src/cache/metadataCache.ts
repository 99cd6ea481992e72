import { LRUCache } from 'lru-cache';
import type { Clock } from '../runtime/clock.js';
import type { MetricsRecorder, RouteLabel } from '../metrics/recorder.js';
import type { UpstreamResponse } from '../upstream/httpRequest.js';
import { metadataTtlMs, type MetadataCacheTtls } from './metadataPolicy.js';
import { SingleFlight } from './singleFlight.js';

export interface MetadataAnswer {
  readonly status: number;
  readonly body: string;
  readonly contentType: string | undefined;
  /** A redirect's target, as IMDS sent it. */
  readonly location?: string | undefined;
}

export interface MetadataCacheOptions {
  fetch: (path: string, route: RouteLabel) => Promise<UpstreamResponse>;
  clock: Clock;
  metrics: MetricsRecorder;
  ttls: MetadataCacheTtls;
  maxEntries: number;
  maxBytes: number;
}

/**
 * Answers for forwarded metadata paths, bounded in entries and bytes, with a lifetime chosen
 * per path by metadataPolicy. Concurrent requests for one path share one upstream request.
 * Upstream failures are not cached: they propagate as UpstreamError.
 */
export class MetadataCache {
  private readonly cache: LRUCache<string, MetadataAnswer>;
  private readonly flights = new SingleFlight<string, MetadataAnswer>();

  constructor(private readonly options: MetadataCacheOptions) {
    this.cache = new LRUCache<string, MetadataAnswer>({
      max: options.maxEntries,
      maxSize: options.maxBytes,
      sizeCalculation: (answer, key) => answer.body.length + key.length + 64,
      // The injected clock, so tests can age entries; monotonic, so a wall-clock step
      // neither stretches nor cuts a lifetime.
      perf: { now: () => options.clock.monotonic() },
      ttlResolution: 0,
    });
  }

  async get(path: string, route: RouteLabel): Promise<MetadataAnswer> {
    const cached = this.cache.get(path);
    if (cached !== undefined) {
      this.options.metrics.cache('metadata', 'hit');
      return cached;
    }
    const { promise, joined } = this.flights.run(path, () => this.fetch(path, route));
    this.options.metrics.cache('metadata', joined ? 'coalesced' : 'miss');
    return promise;
  }

  get size(): number {
    return this.cache.size;
  }

  private async fetch(path: string, route: RouteLabel): Promise<MetadataAnswer> {
    const response = await this.options.fetch(path, route);
    const answer: MetadataAnswer = {
      status: response.status,
      body: response.body,
      contentType: response.contentType,
      ...(response.location !== undefined ? { location: response.location } : {}),
    };
    const ttl = metadataTtlMs(path, response.status, this.options.ttls);
    if (ttl > 0 && answer.body.length + path.length + 64 <= this.options.maxBytes) {
      this.cache.set(path, answer, { ttl });
    }
    return answer;
  }
}
