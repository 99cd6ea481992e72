import type { MetricsRecorder } from '../../src/metrics/recorder.js';

/** Counts every metrics call as "method:arg1:arg2", for asserting exact movements. */
export class RecordingMetrics implements MetricsRecorder {
  readonly counts = new Map<string, number>();
  private bump(key: string) {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }
  count(key: string): number {
    return this.counts.get(key) ?? 0;
  }
  request(route: string, method: string, status: number) {
    this.bump(`request:${route}:${method}:${status}`);
  }
  cache(cache: string, result: string) {
    this.bump(`cache:${cache}:${result}`);
  }
  upstreamRequest(route: string, outcome: string) {
    this.bump(`upstream:${route}:${outcome}`);
  }
  credentialsRefreshed(role: string, outcome: string) {
    this.bump(`refresh:${role}:${outcome}`);
  }
  credentialsState(role: string) {
    this.bump(`state:${role}`);
  }
  forgetRole(role: string) {
    this.bump(`forgetRole:${role}`);
  }
  tokenIssued() {
    this.bump('tokenIssued');
  }
  tokenRejected(reason: string) {
    this.bump(`tokenRejected:${reason}`);
  }
  upstreamTokenRefreshed(outcome: string) {
    this.bump(`upstreamToken:${outcome}`);
  }
}
