import type { Clock } from "../time/clock.js";

/**
 * Settings of the in-process cache of completed outcomes (the interceptor's
 * `replayCache` option).
 */
export interface ReplayCacheOptions {
  /**
   * The most bytes the cache holds: each entry counts its stored outcome, its
   * record identity and fingerprint, and a fixed overhead. The least recently
   * used entries go first; an outcome larger than this is never cached.
   */
  readonly maxBytes: number;
  /**
   * How long an entry is used at most, in milliseconds, and never past the
   * expiry of its record. This is also how long an outcome evicted through
   * the CLI (from another process) may still be replayed from the cache.
   */
  readonly ttlMs: number;
}

/** A completed outcome, as a cached replay needs it. */
export interface CachedOutcome {
  /** The fingerprint of the request that completed the key: another payload is still refused. */
  readonly fingerprint: string;
  /** The binary `idempotency.v1.StoredOutcome`, exactly what the store holds. */
  readonly outcome: Uint8Array;
  /** When the first execution under the key claimed it, by the store's clock (ms since the epoch). */
  readonly firstExecutedAt: number;
}

/**
 * Completed outcomes of this process, by record identity (scope, method and
 * request ID joined, as `DedupeCall.id`), so that a duplicate of a recently
 * completed call is replayed without asking the store. Times are readings of
 * the cache's clock (`performance.now()` in the interceptor).
 */
export interface ReplayCache {
  /** The entry of `id`, unless it has expired (it is then dropped); marks it recently used. */
  get(id: string): CachedOutcome | undefined;
  /**
   * Caches the completed outcome of `id` until `expiresAt` or the TTL,
   * whichever comes first. `expiresAt` must not be later than the record's
   * own expiry, read on the cache's clock.
   */
  set(id: string, entry: CachedOutcome, expiresAt: number): void;
  /** Forgets `id`. */
  delete(id: string): void;
  /** How many entries are held. */
  readonly size: number;
  /** How many bytes the held entries count, at most `maxBytes`. */
  readonly bytes: number;
}

/** What `createReplayCache` takes besides the sizes: the clock, for tests. */
export interface ReplayCacheInit extends ReplayCacheOptions {
  /** A monotonic clock, in milliseconds. Default `performance`. */
  readonly clock?: Clock;
}

// What an entry costs besides its outcome: the Map slot, the entry object
// and its strings (two bytes per UTF-16 unit), a rough upper estimate.
const entryOverheadBytes = 128;

interface Entry extends CachedOutcome {
  readonly expiresAt: number;
  readonly bytes: number;
}

/**
 * Creates an empty replay cache, bounded by bytes, with least recently used
 * entries evicted first. Expired entries are dropped when looked up or when
 * room is needed.
 */
export function createReplayCache(init: ReplayCacheInit): ReplayCache {
  const { maxBytes, ttlMs } = init;
  const clock = init.clock ?? performance;
  // A Map iterates in insertion order: re-inserting on use keeps the least
  // recently used entry first.
  const entries = new Map<string, Entry>();
  let bytes = 0;

  const remove = (id: string, entry: Entry) => {
    entries.delete(id);
    bytes -= entry.bytes;
  };

  return {
    get(id) {
      const entry = entries.get(id);
      if (entry === undefined) {
        return undefined;
      }
      if (clock.now() >= entry.expiresAt) {
        remove(id, entry);
        return undefined;
      }
      entries.delete(id);
      entries.set(id, entry);
      return entry;
    },
    set(id, { fingerprint, outcome, firstExecutedAt }, recordExpiresAt) {
      const previous = entries.get(id);
      if (previous !== undefined) {
        remove(id, previous);
      }
      const at = clock.now();
      const expiresAt = Math.min(recordExpiresAt, at + ttlMs);
      const size = outcome.byteLength + 2 * (id.length + fingerprint.length) + entryOverheadBytes;
      if (expiresAt <= at || size > maxBytes) {
        return;
      }
      for (const [oldId, old] of entries) {
        if (bytes + size <= maxBytes) {
          break;
        }
        remove(oldId, old);
      }
      // A small Buffer may be a view of a shared pool slab: keeping it would
      // keep the whole slab, which the byte count would not show.
      const own = outcome.byteLength === outcome.buffer.byteLength ? outcome : outcome.slice();
      entries.set(id, { fingerprint, outcome: own, firstExecutedAt, expiresAt, bytes: size });
      bytes += size;
    },
    delete(id) {
      const entry = entries.get(id);
      if (entry !== undefined) {
        remove(id, entry);
      }
    },
    get size() {
      return entries.size;
    },
    get bytes() {
      return bytes;
    },
  };
}
