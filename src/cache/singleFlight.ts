/**
 * At most one call in flight per key; later callers join it. This is what turns a thousand
 * concurrent cold requests into one upstream fetch.
 */
export class SingleFlight<K, V> {
  private readonly inFlight = new Map<K, Promise<V>>();

  /** Runs `work` unless a call for `key` is already running. `joined` says which happened. */
  run(key: K, work: () => Promise<V>): { promise: Promise<V>; joined: boolean } {
    const existing = this.inFlight.get(key);
    if (existing !== undefined) return { promise: existing, joined: true };
    const promise = work().finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, promise);
    return { promise, joined: false };
  }

  /** The call running for `key`, if any. */
  current(key: K): Promise<V> | undefined {
    return this.inFlight.get(key);
  }
}
