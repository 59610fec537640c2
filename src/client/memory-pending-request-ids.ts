import { type Clock, resolveClock } from "../time/clock.js";
import type { PendingRequestIdEntry, PendingRequestIds } from "./pending-request-ids.js";

/**
 * Creates pending request IDs kept in memory: they protect against a double
 * click or a second call with the same content while the first is still
 * unanswered, but not against a reload or restart. `clock` is the clock in
 * epoch milliseconds, default `Date`.
 */
export function createMemoryPendingRequestIds(options: { readonly clock?: Clock } = {}): PendingRequestIds {
  if (typeof options === "function") {
    throw new Error(
      "createMemoryPendingRequestIds: the clock is an option since 0.2, an object with now(): pass { clock: { now: yourFunction } }",
    );
  }
  const clock = resolveClock("createMemoryPendingRequestIds", options, Date);
  const entries = new Map<string, PendingRequestIdEntry>();
  return {
    get(key) {
      const entry = entries.get(key);
      if (entry !== undefined && entry.expiresAtMs <= clock.now()) {
        entries.delete(key);
        return Promise.resolve(undefined);
      }
      return Promise.resolve(entry?.requestId);
    },
    set(key, requestId, ttlMs) {
      entries.set(key, { requestId, expiresAtMs: clock.now() + ttlMs });
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
