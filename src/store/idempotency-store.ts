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

/** The life cycle of a record: claimed and running, or done with a stored outcome. */
export type RecordStatus = "in_progress" | "completed";

/** One record as a store keeps it. Times are milliseconds since the epoch. */
export interface IdempotencyRecord extends RecordKey {
  /** Running or done. */
  readonly status: RecordStatus;
  /** Hex SHA-256 of the canonical request with the request ID cleared. */
  readonly fingerprint: string;
  /** The owner token of the latest claim. */
  readonly owner: string;
  /** When the key was first claimed. */
  readonly createdAt: number;
  /** When the record last changed. */
  readonly updatedAt: number;
  /** Until when the owner's claim holds; after it a new request may take over. */
  readonly leaseUntil: number;
  /** After this the record counts as absent and the sweeper may delete it. */
  readonly expiresAt: number;
  /** How many times an expired claim was taken over. */
  readonly takeovers: number;
  /** The `idempotency.v1.StoredOutcome` in binary, once completed. */
  readonly outcome: Uint8Array | undefined;
}

/** Asks a store to claim a key for one execution. */
export interface ClaimInput {
  /** The record to claim. */
  readonly key: RecordKey;
  /** The fingerprint of this request. */
  readonly fingerprint: string;
  /** A fresh random token that identifies this execution. */
  readonly owner: string;
  /** The current time. */
  readonly now: number;
  /** The end of the lease this claim holds. */
  readonly leaseUntil: number;
  /**
   * When the record expires if it is never completed, so that the sweeper
   * eventually removes claims that nobody came back for.
   */
  readonly expiresAt: number;
}

/**
 * What a claim found. A store decides this atomically, through its unique
 * constraint, never by reading first and inserting after.
 *
 * - `claimed`: this request owns the key now. `replaced` says what was there:
 *   nothing, a completed record past its expiry (`expired`), or an in-progress
 *   claim with the same fingerprint whose lease ran out (`takeover`).
 * - `existing`: another record holds the key: completed and unexpired, in
 *   progress with a live lease, or in progress with an expired lease but
 *   another fingerprint (never taken over: that would run a different payload
 *   under a key that may already have had effects).
 */
export type ClaimResult =
  | { readonly kind: "claimed"; readonly replaced: "none" | "expired" | "takeover"; readonly record: IdempotencyRecord }
  | { readonly kind: "existing"; readonly record: IdempotencyRecord };

/** Stores the outcome of a claimed execution. */
export interface CompleteInput {
  /** The claimed record. */
  readonly key: RecordKey;
  /** The owner token of the claim. */
  readonly owner: string;
  /** The `idempotency.v1.StoredOutcome` in binary. */
  readonly outcome: Uint8Array;
  /** The current time. */
  readonly now: number;
  /** When the completed record expires: now plus the retention. */
  readonly expiresAt: number;
}

/** Refers to a claim held by one owner. */
export interface OwnerInput {
  /** The claimed record. */
  readonly key: RecordKey;
  /** The owner token of the claim. */
  readonly owner: string;
}

/** Extends the lease of a running claim. */
export interface RenewInput extends OwnerInput {
  /** The new end of the lease. */
  readonly leaseUntil: number;
}

/** Deletes expired records. */
export interface SweepInput {
  /** The current time. */
  readonly now: number;
  /** Deletes at most this many records. */
  readonly limit: number;
}

/**
 * Where idempotency records live. The interceptor talks to a store only
 * through this interface, and the store conformance suite
 * (`test/store-conformance.ts`) holds every implementation to it.
 *
 * Every operation that changes a claimed record checks the owner token, so an
 * execution whose claim was taken over can never overwrite its successor.
 * Operations reject with an error when the store cannot answer (busy, disk
 * full, connection lost); the interceptor then fails closed.
 */
export interface IdempotencyStore {
  /** Claims a key atomically, or returns the record that holds it. */
  claim(input: ClaimInput): Promise<ClaimResult>;
  /** Stores the outcome; false when `owner` no longer holds the claim. */
  complete(input: CompleteInput): Promise<boolean>;
  /** Deletes a claim so that a retry runs again; false when `owner` no longer holds it. */
  release(input: OwnerInput): Promise<boolean>;
  /** Extends a lease; false when `owner` no longer holds the claim. */
  renew(input: RenewInput): Promise<boolean>;
  /** Reads a record, expired or not; the caller judges expiry. */
  get(key: RecordKey): Promise<IdempotencyRecord | undefined>;
  /** Deletes up to `limit` expired records whose lease has also ended; returns how many. */
  sweep(input: SweepInput): Promise<number>;
  /** Stops the background sweeper and closes connections. Idempotent. */
  close(): Promise<void>;
}
