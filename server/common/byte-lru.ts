/**
 * A byte-bounded least-recently-used map. The caches (prepared images, image embeddings, prefix KV) keep
 * large typed arrays whose sizes vary by an order of magnitude, so the bound is bytes, not entries.
 */
export interface CacheCounters {
  hits: number;
  misses: number;
  entries: number;
  bytes: number;
  evictions: number;
}

export class ByteLru<V> {
  /** Insertion order = recency order (a hit re-inserts). */
  private readonly map = new Map<string, { value: V; bytes: number }>();
  readonly counters: CacheCounters = { hits: 0, misses: 0, entries: 0, bytes: 0, evictions: 0 };

  constructor(readonly maxBytes: number) {}

  get(key: string): V | undefined {
    const e = this.map.get(key);
    if (!e) {
      this.counters.misses++;
      return undefined;
    }
    this.counters.hits++;
    this.map.delete(key);
    this.map.set(key, e);
    return e.value;
  }

  /** The cached value for key, or compute's result, stored under its size in bytes. */
  async getOrCompute(key: string, compute: () => Promise<V>, bytesOf: (value: V) => number): Promise<V> {
    const cached = this.get(key);
    if (cached !== undefined) return cached;
    const value = await compute();
    this.set(key, value, bytesOf(value));
    return value;
  }

  /** Stores a value; an entry larger than the whole budget is not kept. */
  set(key: string, value: V, bytes: number): void {
    this.delete(key);
    if (bytes > this.maxBytes) return;
    this.map.set(key, { value, bytes });
    this.counters.bytes += bytes;
    while (this.counters.bytes > this.maxBytes) {
      const oldest = this.map.keys().next().value as string;
      this.delete(oldest);
      this.counters.evictions++;
    }
    this.counters.entries = this.map.size;
  }

  delete(key: string): void {
    const e = this.map.get(key);
    if (!e) return;
    this.map.delete(key);
    this.counters.bytes -= e.bytes;
    this.counters.entries = this.map.size;
  }

  /** Entries from most to least recently used. */
  *values(): IterableIterator<[string, V]> {
    const all = [...this.map.entries()].reverse();
    for (const [k, e] of all) yield [k, e.value];
  }
}
