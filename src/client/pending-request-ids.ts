/**
 * Where a client keeps the request IDs of operations that have not had a
 * definite answer yet, so that the same operation sent again, after a page
 * reload or a process restart, carries the same ID instead of a new one.
 *
 * Keys name an operation (a method and the content of its request, or a key
 * the caller chose with `withPendingKey`). An entry lives from just before
 * the first attempt until a definite answer (a success, or an error the
 * server stored or that no retry can change) or its expiry.
 *
 * Backends: `createMemoryPendingRequestIds` (one process or page),
 * `createWebStoragePendingRequestIds` (`localStorage` or `sessionStorage`),
 * and `createFilePendingRequestIds` from `connect-idempotency/client/node`.
 */
export interface PendingRequestIds {
  /** The request ID pending under `key`, unless there is none or it expired. */
  get(key: string): Promise<string | undefined>;
  /** Records `requestId` as pending under `key` for `ttlMs` milliseconds by the backend's clock. */
  set(key: string, requestId: string, ttlMs: number): Promise<void>;
  /** Removes the entry under `key`, but only while it still holds `requestId`. */
  delete(key: string, requestId: string): Promise<void>;
}

/** One pending entry, as the backends keep it. */
export interface PendingRequestIdEntry {
  /** The request ID of the operation. */
  readonly requestId: string;
  /** When the entry stops counting, in epoch milliseconds. */
  readonly expiresAtMs: number;
}

/**
 * How long a pending request ID is reused by default: one hour, well within
 * the server's default retention of 24 hours, so that a reused ID still finds
 * the server's record, and short enough that a purchase made much later with
 * the same content is not taken for a retry.
 */
export const defaultPendingTtlMs = 60 * 60 * 1000;

/**
 * Reads one entry as the backends store it (`{"requestId", "expiresAtMs"}`
 * JSON); undefined for anything else, such as a value another program wrote
 * under the same key.
 */
export function parsePendingRequestIdEntry(text: string | null | undefined): PendingRequestIdEntry | undefined {
  if (text === null || text === undefined) {
    return undefined;
  }
  try {
    return asPendingRequestIdEntry(JSON.parse(text));
  } catch {
    return undefined;
  }
}

/** The value as an entry when it has an entry's shape, undefined otherwise. */
export function asPendingRequestIdEntry(value: unknown): PendingRequestIdEntry | undefined {
  if (
    typeof value === "object" &&
    value !== null &&
    "requestId" in value &&
    typeof value.requestId === "string" &&
    "expiresAtMs" in value &&
    typeof value.expiresAtMs === "number"
  ) {
    return { requestId: value.requestId, expiresAtMs: value.expiresAtMs };
  }
  return undefined;
}
