import type { IdempotencyRecord, RecordKey, RecordStatus } from "./idempotency-store.js";

/** A record without its stored outcome, for listings. */
export interface RecordSummary extends Omit<IdempotencyRecord, "outcome"> {
  /** The size of the stored outcome in bytes; 0 until completed. */
  readonly outcomeBytes: number;
}

/** A record as `find` returns it: with its outcome, and whether it is damaged. */
export interface FoundRecord extends IdempotencyRecord {
  /**
   * True when its checksum does not match what it holds: the store answers
   * calls with its request ID with DATA_LOSS STORE_CORRUPT, and `outcome`
   * may be altered. False too for records written before the store kept
   * checksums.
   */
  readonly damaged: boolean;
}

/** Which records `list` returns, newest first. */
export interface RecordFilter {
  /** Only this fully qualified method. */
  readonly method?: string;
  /** Only this scope. */
  readonly scope?: string;
  /** Only records in this status. */
  readonly status?: RecordStatus;
  /** Only records created longer ago than this, by the store's clock. */
  readonly olderThanMs?: number;
  /** At most this many records. */
  readonly limit: number;
}

/** Narrows `find` when one request ID exists under several methods or scopes. */
export interface RecordWhere {
  /** Only this fully qualified method. */
  readonly method?: string;
  /** Only this scope. */
  readonly scope?: string;
}

/** Record counts of one method. */
export interface MethodStats {
  /** The fully qualified method. */
  readonly method: string;
  /** Claims still running (or whose process died before its lease ended). */
  readonly inProgress: number;
  /** Claims whose handler failed with an indefinite error; the next retry takes them over. */
  readonly interrupted: number;
  /** Records with a stored outcome, still replayed. */
  readonly completed: number;
  /** Completed records past their replay window, kept as tombstones. */
  readonly tombstoned: number;
}

/** What a store holds, for `connect-idempotency stats`. */
export interface StoreStats {
  /** Where the records live: a file path, or a qualified PostgreSQL table. */
  readonly location: string;
  /** All in-progress records. */
  readonly inProgress: number;
  /** All interrupted records. */
  readonly interrupted: number;
  /** All completed records still replayed. */
  readonly completed: number;
  /** All tombstones: completed records past their replay window, not yet expired. */
  readonly tombstoned: number;
  /** Counts per method, by method name. */
  readonly byMethod: readonly MethodStats[];
  /** The in-progress claim created first, if any; its `leaseUntil` tells whether it is still held. */
  readonly oldestInProgress: RecordSummary | undefined;
  /** Records the sweeper may delete now: expired, with no live lease. */
  readonly expired: number;
  /** Bytes on disk: the database file with its WAL (SQLite), or the table with its indexes and TOAST (PostgreSQL). */
  readonly sizeBytes: number;
  /** The store's clock when it counted: compare the records' times with this. */
  readonly readAt: number;
}

/**
 * Inspection and repair of the records of a store, for operators. It works
 * on the same tables as the store, next to running servers: reads never
 * change a record, and only `evict`, `evictCorrupt` and `sweep` delete.
 */
export interface IdempotencyStoreAdmin {
  /** Counts records, judging expiry by the store's clock (the database's, for PostgreSQL). */
  stats(): Promise<StoreStats>;
  /** Lists records, newest first. */
  list(filter: RecordFilter): Promise<RecordSummary[]>;
  /** Every record with this request ID, narrowed by `where`. */
  find(key: string, where?: RecordWhere): Promise<FoundRecord[]>;
  /**
   * Deletes one record whatever its status, so that the next call with its
   * request ID runs the handler again. False when there was no such record.
   * An execution still running on an evicted claim can no longer store its
   * outcome: its owner token no longer matches.
   */
  evict(key: RecordKey): Promise<boolean>;
  /** Deletes every record the sweeper may delete now, by the store's clock; returns how many. */
  sweep(): Promise<number>;
  /**
   * Records whose checksum does not match what they hold (damaged on disk,
   * or changed by hand), oldest first: the store answers calls with their
   * request IDs with DATA_LOSS STORE_CORRUPT. Reads every record. Records
   * written before the store kept checksums are never listed.
   */
  corrupt(limit: number): Promise<RecordSummary[]>;
  /**
   * Deletes every record `corrupt` lists, so that the next call with each
   * of their request IDs runs the handler again; returns how many.
   */
  evictCorrupt(): Promise<number>;
  /** Closes the connection. Idempotent. */
  close(): Promise<void>;
}

/**
 * Adds up per-method, per-status record counts (one row per pair, as a
 * `GROUP BY method, status` returns them) into the totals of `StoreStats`.
 */
export function tallyRecordCounts(
  rows: Iterable<{ readonly method: string; readonly status: RecordStatus; readonly n: number }>,
): Pick<StoreStats, "inProgress" | "interrupted" | "completed" | "tombstoned" | "byMethod"> {
  const byMethod = new Map<string, MethodStats>();
  const totals = { inProgress: 0, interrupted: 0, completed: 0, tombstoned: 0 };
  const field = {
    in_progress: "inProgress",
    interrupted: "interrupted",
    completed: "completed",
    tombstoned: "tombstoned",
  } as const;
  for (const { method, status, n } of rows) {
    const entry = byMethod.get(method) ?? { method, inProgress: 0, interrupted: 0, completed: 0, tombstoned: 0 };
    byMethod.set(method, { ...entry, [field[status]]: entry[field[status]] + n });
    totals[field[status]] += n;
  }
  return { ...totals, byMethod: [...byMethod.values()] };
}
