import type { RecordKey } from "./idempotency-store.js";

const name = "StoreCorruptError";

/**
 * A record the store read back is damaged: its checksum does not match what
 * it holds, or the database reports a malformed page under it. Such a record
 * is neither replayed (its answer may be altered) nor treated as absent
 * (that would run the request a second time). The interceptor answers with
 * DATA_LOSS STORE_CORRUPT; an operator finds such records with
 * `connect-idempotency keys corrupt` and evicts them with
 * `connect-idempotency keys evict --corrupt`.
 */
export interface StoreCorruptError extends Error {
  readonly name: typeof name;
  /** The record asked for. */
  readonly record: RecordKey;
}

/** Creates the error a store throws for a damaged record; `cause` is the database's error, if any. */
export function createStoreCorruptError(record: RecordKey, problem: string, cause?: unknown): StoreCorruptError {
  const error = new Error(
    `the stored record of request ID ${JSON.stringify(record.key)} of ${record.method} is damaged (${problem}); ` +
      "it is neither replayed nor run again until an operator evicts it",
    cause === undefined ? undefined : { cause },
  ) as Error & { name: string; record: RecordKey };
  error.name = name;
  error.record = record;
  return error as StoreCorruptError;
}

/**
 * Whether a store operation failed because the record is damaged (see
 * `StoreCorruptError`). Checks by name, so that it holds across copies of
 * this package.
 */
export function isStoreCorruptError(error: unknown): error is StoreCorruptError {
  return error instanceof Error && error.name === name;
}
