import type { Database } from "better-sqlite3";
import type {
  ClaimInput,
  ClaimResult,
  CompleteInput,
  IdempotencyRecord,
  OwnerInput,
  RecordKey,
  RenewInput,
  SweepInput,
} from "../idempotency-store.js";
import { quoteSqliteIdentifier, recordFromSqliteRow, sqliteRecordColumns, type SqliteRecordRow } from "./sqlite-schema.js";

/**
 * Every store operation on one records table, as synchronous functions over
 * statements prepared once. They run inside a transaction of the store's
 * executor (`SqliteStore.executor.run`), so that code completing a key
 * together with its own writes shares the store's SQL.
 *
 * Expiry and lease ends are inclusive: a record whose `expires_at` equals
 * `now` is expired, a lease whose `lease_until` equals `now` has ended.
 */
export interface SqliteStatements {
  /**
   * One upsert against the primary key: inserts, replaces a record that
   * counts as absent (expired, with no live lease: `expired`) or a dead claim
   * with the same fingerprint (`takeover`), or else reads the record that
   * holds the key. Needs a transaction, so that the record it reads is the
   * one that blocked it.
   */
  claim(input: ClaimInput): ClaimResult;
  /** Reads one record. */
  get(key: RecordKey): IdempotencyRecord | undefined;
  /** Stores the outcome if `owner` holds the in-progress claim. */
  complete(input: CompleteInput): boolean;
  /** Deletes the claim if `owner` holds it and it is still in progress. */
  release(input: OwnerInput): boolean;
  /** Sets the lease end if `owner` holds the in-progress claim. */
  renew(input: RenewInput): boolean;
  /** Deletes up to `limit` expired records whose lease ended, in one statement; returns how many. */
  sweep(input: SweepInput): number;
}

/** Prepares the statements of a records table that `migrateSqliteSchema` created. */
export function createSqliteStatements(db: Database, table: string): SqliteStatements {
  const quoted = quoteSqliteIdentifier(table);
  // Positional parameters throughout: binding named ones reads each from a
  // JS object, which costs more than the statement itself on the hot path.
  const keyMatch = "scope = ? AND method = ? AND key = ?";
  // In the upsert, `excluded.*` holds the values of the attempted insert, so
  // the conditions below need no parameters of their own: `updated_at` is now.
  // A record counts as absent once it expired, unless an in-progress claim
  // still holds a lease: the sweeper's own rule, so a claim never depends on
  // whether the sweeper already ran. A completed record's lease ended when it
  // completed.
  const expired =
    "(expires_at <= excluded.updated_at AND (status = 'completed' OR lease_until <= excluded.updated_at))";
  // Only the same payload may take over a dead claim: another payload under a
  // key that may already have had effects is a client bug.
  const takeover =
    "(status = 'in_progress' AND lease_until <= excluded.updated_at AND fingerprint = excluded.fingerprint)";
  // Every other column of a claimed record is what the claim wrote, so only
  // these come back.
  const claim = db.prepare<ClaimParams, ClaimedRow>(`INSERT INTO ${quoted}
  (scope, method, key, status, fingerprint, owner, created_at, updated_at, lease_until, expires_at, takeovers, replaced, outcome)
VALUES (?, ?, ?, 'in_progress', ?, ?, ?, ?, ?, ?, 0, 'none', NULL)
ON CONFLICT (scope, method, key) DO UPDATE SET
  status = 'in_progress',
  fingerprint = excluded.fingerprint,
  owner = excluded.owner,
  created_at = CASE WHEN ${takeover} THEN created_at ELSE excluded.created_at END,
  updated_at = excluded.updated_at,
  lease_until = excluded.lease_until,
  expires_at = excluded.expires_at,
  takeovers = CASE WHEN ${takeover} THEN takeovers + 1 ELSE 0 END,
  replaced = CASE WHEN ${takeover} THEN 'takeover' ELSE 'expired' END,
  outcome = NULL
WHERE ${takeover} OR ${expired}
RETURNING created_at, takeovers, replaced`);
  const get = db.prepare<KeyParams, SqliteRecordRow>(`SELECT ${sqliteRecordColumns} FROM ${quoted} WHERE ${keyMatch}`);
  const complete = db.prepare<CompleteParams>(`UPDATE ${quoted}
SET status = 'completed', outcome = ?, updated_at = ?, lease_until = ?, expires_at = ?
WHERE ${keyMatch} AND owner = ? AND status = 'in_progress'`);
  // A completed record is never released: that would drop a stored outcome.
  const release = db.prepare<OwnerParams>(
    `DELETE FROM ${quoted} WHERE ${keyMatch} AND owner = ? AND status = 'in_progress'`,
  );
  const renew = db.prepare<RenewParams>(
    `UPDATE ${quoted} SET lease_until = ? WHERE ${keyMatch} AND owner = ? AND status = 'in_progress'`,
  );
  const sweep = db.prepare<[now: number, now: number, limit: number]>(`DELETE FROM ${quoted} WHERE rowid IN (
  SELECT rowid FROM ${quoted} WHERE expires_at <= ? AND lease_until <= ? LIMIT ?
)`);

  return {
    claim(input) {
      const { key, fingerprint, owner, now, leaseUntil, expiresAt } = input;
      const row = claim.get(key.scope, key.method, key.key, fingerprint, owner, now, now, leaseUntil, expiresAt);
      if (row !== undefined) {
        return {
          kind: "claimed",
          replaced: row.replaced,
          record: {
            scope: key.scope,
            method: key.method,
            key: key.key,
            status: "in_progress",
            fingerprint,
            owner,
            createdAt: row.created_at,
            updatedAt: now,
            leaseUntil,
            expiresAt,
            takeovers: row.takeovers,
            outcome: undefined,
          },
        };
      }
      const holder = get.get(key.scope, key.method, key.key);
      if (holder === undefined) {
        throw new Error(`claim of ${key.method} found neither a free key nor a record; run it in a transaction`);
      }
      return { kind: "existing", record: recordFromSqliteRow(holder) };
    },
    get(key) {
      const row = get.get(key.scope, key.method, key.key);
      return row === undefined ? undefined : recordFromSqliteRow(row);
    },
    complete({ key, owner, outcome, now, expiresAt }) {
      return complete.run(outcome, now, now, expiresAt, key.scope, key.method, key.key, owner).changes === 1;
    },
    release({ key, owner }) {
      return release.run(key.scope, key.method, key.key, owner).changes === 1;
    },
    renew({ key, owner, leaseUntil }) {
      return renew.run(leaseUntil, key.scope, key.method, key.key, owner).changes === 1;
    },
    sweep({ now, limit }) {
      return sweep.run(now, now, limit).changes;
    },
  };
}

type KeyParams = [scope: string, method: string, key: string];

type OwnerParams = [...KeyParams, owner: string];

type ClaimParams = [
  ...KeyParams,
  fingerprint: string,
  owner: string,
  createdAt: number,
  updatedAt: number,
  leaseUntil: number,
  expiresAt: number,
];

type CompleteParams = [
  outcome: Uint8Array,
  updatedAt: number,
  leaseUntil: number,
  expiresAt: number,
  ...OwnerParams,
];

type RenewParams = [leaseUntil: number, ...OwnerParams];

/** What a successful claim returns: the columns it did not take from its input. */
interface ClaimedRow {
  readonly created_at: number;
  readonly takeovers: number;
  readonly replaced: "none" | "expired" | "takeover";
}
