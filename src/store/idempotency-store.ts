/**
 * Identifies one idempotency record. The same request ID in another scope or
 * on another method is another record: one tenant never sees another's
 * stored response.
 */
export interface RecordKey {
  /** The tenant or principal the key belongs to. */
  readonly scope: string;
  /** The fully qualified method, such as `demo.v1.PaymentService/CreatePayment`. */
  readonly method: string;
  /** The request ID in canonical form. */
  readonly key: string;
}

/**
 * The life cycle of a record:
 *
 * - `in_progress`: claimed, and its owner runs the handler under a lease;
 * - `interrupted`: the handler started and failed with an indefinite error
 *   (it may have acted). The record and its phases stay; the lease has ended,
 *   and the next call with the same payload takes it over at once;
 * - `completed`: done, with a stored outcome, replayed to duplicates;
 * - `tombstoned`: done, and its replay window (`replayUntil`) has ended by
 *   the store's clock while the record is kept until `expiresAt`: its
 *   outcome is no longer replayed (the sweeper drops its body), but the key
 *   stays taken, so a late duplicate is refused rather than run again. A
 *   store reports it by the clock of the read (`readAt`).
 */
export type RecordStatus = "in_progress" | "interrupted" | "completed" | "tombstoned";

/**
 * One record as a store keeps it. Times are milliseconds since the epoch, by
 * the store's clock: the database server's for PostgreSQL, the machine's
 * for SQLite. Compare them with `readAt`, never with the local clock.
 */
export interface IdempotencyRecord extends RecordKey {
  /** Running, interrupted or done. */
  readonly status: RecordStatus;
  /** Hex SHA-256 of the canonical request with the request ID cleared. */
  readonly fingerprint: string;
  /** The owner token of the latest claim. */
  readonly owner: string;
  /**
   * Which execution of this key the latest claim is: 1 for the first, one
   * more for every takeover (after a crash, a stall or an indefinite error).
   */
  readonly attempt: number;
  /** When the key was first claimed. */
  readonly createdAt: number;
  /** When the record last changed. */
  readonly updatedAt: number;
  /** Until when the owner's claim holds; after it (and a grace period) a new request may take over. */
  readonly leaseUntil: number;
  /** After this the record counts as absent and the sweeper may delete it: for a record with a tombstone, the tombstone's end. */
  readonly expiresAt: number;
  /**
   * Until when a completed record's outcome is replayed; after it (and until
   * `expiresAt`) the record is a tombstone. Undefined for a record without
   * a tombstone (completed with no tombstone period, written before
   * tombstones, or not completed), which replays until `expiresAt`.
   */
  readonly replayUntil?: number | undefined;
  /** The code of the stored outcome (0 for success), kept by a record with a replay end. */
  readonly outcomeCode?: number | undefined;
  /** The `idempotency.v1.StoredOutcome` in binary, once completed; undefined once a tombstone dropped it. */
  readonly outcome: Uint8Array | undefined;
  /** The store's clock when this record was read. */
  readonly readAt: number;
}

/**
 * Asks a store to claim a key for one execution. Durations, not times: the
 * store reads its own clock, so that servers with skewed clocks agree.
 */
export interface ClaimInput {
  /** The record to claim. */
  readonly key: RecordKey;
  /** The fingerprint of this request. */
  readonly fingerprint: string;
  /** A fresh random token that identifies this execution. */
  readonly owner: string;
  /** How long the claim holds from now without renewal. */
  readonly leaseMs: number;
  /**
   * How long past the end of a lease a claim still counts as held: a takeover
   * of an `in_progress` claim needs its lease plus this grace period to have
   * passed, so that an owner whose renewals were delayed by an outage wins
   * the race when the store answers again. An `interrupted` claim is taken
   * over at once.
   */
  readonly graceMs: number;
  /**
   * How long from now the record lives if it is never completed, so that the
   * sweeper eventually removes claims that nobody came back for.
   */
  readonly expiresInMs: number;
}

/**
 * What a claim found. A store decides this atomically, through its unique
 * constraint, never by reading first and inserting after.
 *
 * - `claimed`: this request owns the key now. `replaced` says what was there:
 *   nothing, a completed record past its expiry (`expired`: a fresh start, its
 *   phases deleted), or a claim with the same fingerprint whose lease and
 *   grace period ran out or that was interrupted (`takeover`: the phases stay,
 *   and `record.attempt` counts up).
 * - `existing`: another record holds the key: completed and unexpired
 *   (replayed, or a tombstone past its replay window: never replaced before
 *   `expiresAt`, whatever the fingerprint), in
 *   progress with a live lease, or interrupted or dead with another
 *   fingerprint (never taken over: that would run a different payload under
 *   a key that may already have had effects).
 */
export type ClaimResult =
  | { readonly kind: "claimed"; readonly replaced: "none" | "expired" | "takeover"; readonly record: IdempotencyRecord }
  | { readonly kind: "existing"; readonly record: IdempotencyRecord };

/**
 * Refers to the claim of one execution. Every write of an execution is
 * fenced by both: a store changes a record only while its owner token and
 * attempt are these.
 */
export interface OwnerInput {
  /** The claimed record. */
  readonly key: RecordKey;
  /** The owner token of the claim. */
  readonly owner: string;
  /** The attempt of the claim (`IdempotencyRecord.attempt` of the claim). */
  readonly attempt: number;
}

/** Stores the outcome of a claimed execution. */
export interface CompleteInput extends OwnerInput {
  /** The `idempotency.v1.StoredOutcome` in binary. */
  readonly outcome: Uint8Array;
  /** How long from now the completed record's outcome is replayed. */
  readonly retentionMs: number;
  /**
   * How long after the replay window a tombstone keeps the key taken (0 or
   * absent: none, the record is gone after `retentionMs`).
   */
  readonly tombstoneMs?: number;
  /** The code of the outcome (0, the default, for success), which a tombstone keeps. */
  readonly outcomeCode?: number;
}

/** Extends the lease of a running claim. */
export interface RenewInput extends OwnerInput {
  /** The new lease, from now. */
  readonly leaseMs: number;
}

/**
 * Sweeps in two stages: drops the outcome of completed records past their
 * replay window (the tombstone stays), then deletes expired records.
 */
export interface SweepInput {
  /** Deletes at most this many records (and drops at most this many outcomes). */
  readonly limit: number;
}

/**
 * Where idempotency records live. The interceptor talks to a store only
 * through this interface, and the store conformance suite
 * (`test/conformance/store-conformance.ts`) holds every implementation to it.
 *
 * Every operation that changes a claimed record checks the owner token and
 * attempt, so an execution whose claim was taken over can never overwrite its
 * successor. Operations reject with an error when the store cannot answer
 * (busy, disk full, connection lost); the interceptor then fails closed.
 * Leases, expiry and sweeping are judged by the store's own clock.
 */
export interface IdempotencyStore {
  /**
   * The longest time one operation may block the process (not just its own
   * promise), such as SQLite's busy timeout: the interceptor refuses a lease
   * that renewals could not keep through such a wait. 0 or absent when
   * operations never block the event loop.
   */
  readonly blockingWaitMs?: number;
  /** Claims a key atomically, or returns the record that holds it. */
  claim(input: ClaimInput): Promise<ClaimResult>;
  /**
   * Stores the outcome. True when this owner and attempt completed the
   * record, now or by an earlier call whose answer was lost (so a retried
   * completion is a success); false when the claim is no longer theirs.
   */
  complete(input: CompleteInput): Promise<boolean>;
  /**
   * Marks a running claim `interrupted`: the handler may have acted, so the
   * record and its phases stay, and the lease ends now so that the next call
   * with the same payload takes over at once. False when `owner` no longer
   * holds the claim.
   */
  interrupt(input: OwnerInput): Promise<boolean>;
  /**
   * Deletes a running claim and its phases so that a retry runs afresh (the
   * handler said nothing happened); false when `owner` no longer holds it.
   */
  release(input: OwnerInput): Promise<boolean>;
  /** Extends a lease; false when `owner` no longer holds the running claim. */
  renew(input: RenewInput): Promise<boolean>;
  /** Reads a record, expired or not, with the store's clock in `readAt`; the caller judges expiry. */
  get(key: RecordKey): Promise<IdempotencyRecord | undefined>;
  /**
   * Drops the outcome of up to `limit` intact records past their replay
   * window (they stay as tombstones), then deletes up to `limit` records
   * expired by the store's clock whose lease has also ended; returns how many
   * it deleted.
   */
  sweep(input: SweepInput): Promise<number>;
  /** Stops the background sweeper and closes connections. Idempotent. */
  close(): Promise<void>;
}
