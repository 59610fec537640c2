import { type Clock, resolveClock } from "../time/clock.js";
import {
  type PendingRequestIdEntry,
  type PendingRequestIds,
  parsePendingRequestIdEntry,
} from "./pending-request-ids.js";

/**
 * The part of the Web Storage API (`localStorage`, `sessionStorage`) that
 * pending request IDs use.
 */
export interface WebStorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
  readonly length: number;
  key(index: number): string | null;
}

/** Options of `createWebStoragePendingRequestIds`. */
export interface WebStoragePendingRequestIdsOptions {
  /** Prefix of the storage keys. Default `connect-idempotency:pending:`. */
  readonly prefix?: string;
  /** The clock, in epoch milliseconds. Default `Date`. */
  readonly clock?: Clock;
}

/**
 * Creates pending request IDs kept in a Web Storage area, so that they
 * survive a reload: `sessionStorage` keeps them for the tab (a reload, a
 * restored tab), `localStorage` for every tab of the origin (a second tab
 * paying the same cart gets the same ID). Expired entries are removed when
 * the store is created.
 *
 * Only request IDs and hashes of the requests are stored, never their content.
 *
 * ```ts
 * const pending = createWebStoragePendingRequestIds(localStorage);
 * const client = createPaymentServiceClient(transport, { pendingRequestIds: pending });
 * ```
 */
export function createWebStoragePendingRequestIds(
  storage: WebStorageLike,
  options: WebStoragePendingRequestIdsOptions = {},
): PendingRequestIds {
  const prefix = options.prefix ?? "connect-idempotency:pending:";
  const clock = resolveClock("createWebStoragePendingRequestIds", options, Date);
  const read = (storageKey: string): PendingRequestIdEntry | undefined => {
    const entry = parsePendingRequestIdEntry(storage.getItem(storageKey));
    if (entry !== undefined && entry.expiresAtMs > clock.now()) {
      return entry;
    }
    storage.removeItem(storageKey);
    return undefined;
  };
  // Collected first: removing while walking shifts the indexes. Pruning is
  // housekeeping: a storage that refuses it still serves the calls.
  try {
    const stored: string[] = [];
    for (let i = 0; i < storage.length; i++) {
      const key = storage.key(i);
      if (key?.startsWith(prefix) === true) {
        stored.push(key);
      }
    }
    stored.forEach(read);
  } catch {
    // Left for the next start.
  }
  return {
    get(key) {
      return Promise.resolve(read(prefix + key)?.requestId);
    },
    set(key, requestId, ttlMs) {
      storage.setItem(
        prefix + key,
        JSON.stringify({ requestId, expiresAtMs: clock.now() + ttlMs } satisfies PendingRequestIdEntry),
      );
      return Promise.resolve();
    },
    delete(key, requestId) {
      if (parsePendingRequestIdEntry(storage.getItem(prefix + key))?.requestId === requestId) {
        storage.removeItem(prefix + key);
      }
      return Promise.resolve();
    },
  };
}
