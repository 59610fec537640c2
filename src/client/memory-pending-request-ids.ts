import type { PendingRequestIdEntry, PendingRequestIds } from "./pending-request-ids.js";

/**
 * Creates pending request IDs kept in memory: they protect against a double
 * click or a second call with the same content while the first is still
 * unanswered, but not against a reload or restart. `now` is the clock in
 * epoch milliseconds, default `Date.now`.
 */
export function createMemoryPendingRequestIds(now: () => number = Date.now): PendingRequestIds {
  const entries = new Map<string, PendingRequestIdEntry>();
  return {
    get(key) {
      const entry = entries.get(key);
      if (entry !== undefined && entry.expiresAtMs <= now()) {
        entries.delete(key);
        return Promise.resolve(undefined);
      }
      return Promise.resolve(entry?.requestId);
    },
    set(key, requestId, ttlMs) {
      entries.set(key, { requestId, expiresAtMs: now() + ttlMs });
      return Promise.resolve();
    },
    delete(key, requestId) {
      if (entries.get(key)?.requestId === requestId) {
        entries.delete(key);
      }
      return Promise.resolve();
    },
  };
}
