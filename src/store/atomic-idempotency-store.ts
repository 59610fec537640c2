import type { IdempotencyStore, OwnerInput, RecordKey } from "./idempotency-store.js";

/**
 * How a store runs the application's code inside its transactions: `sync`
 * when a transaction cannot span an await (better-sqlite3), `async` when it
 * can (a PostgreSQL client).
 */
export type TransactionMode = "sync" | "async";

/**
 * The application's part of a transaction: it receives the transaction
 * handle and returns its result, synchronously when the store's transactions
 * are synchronous. An `async` function given to a synchronous store fails to
 * compile with `SynchronousTransactionRequired` as the expected return type.
 */
export type TransactionWork<Tx, T, Mode extends TransactionMode> = (
  tx: Tx,
) => Mode extends "sync" ? (T extends PromiseLike<unknown> ? SynchronousTransactionRequired : T) : T | Promise<T>;

/**
 * The return type TypeScript expects, and names in its error, when an `async`
 * function (or one returning a promise) is given to a store whose
 * transactions are synchronous: better-sqlite3 commits before any `await`
 * resumes, so the function must do its writes synchronously.
 */
export interface SynchronousTransactionRequired {
  readonly "this store's transactions cannot span an await: the function must be synchronous": never;
}

/** What the work of `completeWithin` gives back: its value and the outcome to store. */
export interface AtomicCompletion<T> {
  /** Handed back to the caller of `completeWithin` once the transaction committed. */
  readonly value: T;
  /** The `idempotency.v1.StoredOutcome` in binary that completes the key. */
  readonly outcome: Uint8Array;
  /** The outcome's code (0, the default, for success), which a tombstone keeps. */
  readonly outcomeCode?: number;
}

/** Completes a claimed key in the same transaction as the application's writes. */
export interface CompleteWithinInput extends OwnerInput {
  /** How long from now the completed record's outcome is replayed. */
  readonly retentionMs: number;
  /** How long after that a tombstone keeps the key taken (0 or absent: none). */
  readonly tombstoneMs?: number;
}

/**
 * What `completeWithin` did: committed the work together with the
 * completion, or nothing at all because `owner` no longer held the claim (the
 * work did not run).
 */
export type CompleteWithinResult<T> =
  | { readonly kind: "completed"; readonly value: T }
  | { readonly kind: "not_owner" };

/** Names one recorded step of a request. */
export interface PhaseKey {
  /** The request's record. */
  readonly key: RecordKey;
  /** The step's name, unique within the request. */
  readonly name: string;
}

/** Records the result of one step of a claimed request. */
export interface RecordPhaseInput extends OwnerInput {
  /** The step's name, unique within the request. */
  readonly name: string;
  /** The step's result: a `google.protobuf.Any` in binary. */
  readonly result: Uint8Array;
}

/**
 * A store that can commit the application's own writes together with the
 * completion of a key, and keep recovery points (phases) of a request.
 *
 * `Tx` is the transaction handle the application writes through (a
 * better-sqlite3 `Database` of the same file, a `pg` client inside the same
 * transaction), so its tables live beside the idempotency records.
 *
 * Phases belong to their record: releasing, sweeping or evicting the record
 * deletes them, and so does a claim that replaces an expired record. A
 * takeover (after a crash, a stall or an indefinite error) keeps them, which
 * is what lets a retry resume where an earlier execution stopped.
 */
export interface AtomicIdempotencyStore<Tx, Mode extends TransactionMode> extends IdempotencyStore {
  /** How `transact` and `completeWithin` run their work. */
  readonly transactionMode: Mode;
  /**
   * Runs `work` in one transaction of the store's database, for calls that
   * complete no key (they carry no request ID). When `work` throws, the
   * transaction rolls back and the promise rejects with that error.
   */
  transact<T>(work: TransactionWork<Tx, T, Mode>): Promise<T>;
  /**
   * In one transaction: checks that `owner` and `attempt` hold the running claim, runs
   * `work`, and completes the key with the outcome it returns. When `work`
   * throws, the transaction rolls back and the promise rejects with that
   * error; the claim stays as it was. When `owner` does not hold the claim,
   * `work` never runs.
   */
  completeWithin<T>(
    input: CompleteWithinInput,
    work: TransactionWork<Tx, AtomicCompletion<T>, Mode>,
  ): Promise<CompleteWithinResult<T>>;
  /** The recorded result of a step, whoever recorded it, or undefined. */
  getPhase(input: PhaseKey): Promise<Uint8Array | undefined>;
  /**
   * Records the result of a step, replacing an earlier one of the same name;
   * false (and nothing recorded) when `owner` and `attempt` no longer hold
   * the running claim.
   */
  recordPhase(input: RecordPhaseInput): Promise<boolean>;
}
