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
  const keyMatch = "scope = @scope AND method = @method AND key = @key";
  // A record counts as absent once it expired, unless an in-progress claim
  // still holds a lease: the sweeper's own rule, so a claim never depends on
  // whether the sweeper already ran. A completed record's lease ended when it
  // completed.
  const expired = "(expires_at <= @now AND (status = 'completed' OR lease_until <= @now))";
  // Only the same payload may take over a dead claim: another payload under a
  // key that may already have had effects is a client bug.
  const takeover = "(status = 'in_progress' AND lease_until <= @now AND fingerprint = @fingerprint)";
  const claim = db.prepare<ClaimParams, SqliteRecordRow>(`INSERT INTO ${quoted}
  (scope, method, key, status, fingerprint, owner, created_at, updated_at, lease_until, expires_at, takeovers, replaced, outcome)
VALUES (@scope, @method, @key, 'in_progress', @fingerprint, @owner, @now, @now, @leaseUntil, @expiresAt, 0, 'none', NULL)
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
RETURNING ${sqliteRecordColumns}`);
  const get = db.prepare<KeyParams, SqliteRecordRow>(`SELECT ${sqliteRecordColumns} FROM ${quoted} WHERE ${keyMatch}`);
  const complete = db.prepare<CompleteParams>(`UPDATE ${quoted}
SET status = 'completed', outcome = @outcome, updated_at = @now, lease_until = @now, expires_at = @expiresAt
WHERE ${keyMatch} AND owner = @owner AND status = 'in_progress'`);
  // A completed record is never released: that would drop a stored outcome.
  const release = db.prepare<OwnerParams>(
    `DELETE FROM ${quoted} WHERE ${keyMatch} AND owner = @owner AND status = 'in_progress'`,
  );
  const renew = db.prepare<RenewParams>(
    `UPDATE ${quoted} SET lease_until = @leaseUntil WHERE ${keyMatch} AND owner = @owner AND status = 'in_progress'`,
  );
  const sweep = db.prepare<SweepInput>(`DELETE FROM ${quoted} WHERE rowid IN (
  SELECT rowid FROM ${quoted} WHERE expires_at <= @now AND lease_until <= @now LIMIT @limit
)`);

  return {
    claim(input) {
      const params: ClaimParams = {
        ...keyParams(input.key),
        fingerprint: input.fingerprint,
        owner: input.owner,
        now: input.now,
        leaseUntil: input.leaseUntil,
        expiresAt: input.expiresAt,
      };
      const row = claim.get(params);
      if (row !== undefined) {
        return { kind: "claimed", replaced: row.replaced, record: recordFromSqliteRow(row) };
      }
      const holder = get.get(keyParams(input.key));
      if (holder === undefined) {
        throw new Error(`claim of ${input.key.method} found neither a free key nor a record; run it in a transaction`);
      }
      return { kind: "existing", record: recordFromSqliteRow(holder) };
    },
    get(key) {
      const row = get.get(keyParams(key));
      return row === undefined ? undefined : recordFromSqliteRow(row);
    },
    complete(input) {
      const params: CompleteParams = {
        ...keyParams(input.key),
        owner: input.owner,
        outcome: input.outcome,
        now: input.now,
        expiresAt: input.expiresAt,
      };
      return complete.run(params).changes === 1;
    },
    release(input) {
      return release.run({ ...keyParams(input.key), owner: input.owner }).changes === 1;
    },
    renew(input) {
      return renew.run({ ...keyParams(input.key), owner: input.owner, leaseUntil: input.leaseUntil }).changes === 1;
    },
    sweep(input) {
      return sweep.run({ now: input.now, limit: input.limit }).changes;
    },
  };
}

interface KeyParams {
  readonly scope: string;
  readonly method: string;
  readonly key: string;
}

interface OwnerParams extends KeyParams {
  readonly owner: string;
}

interface ClaimParams extends OwnerParams {
  readonly fingerprint: string;
  readonly now: number;
  readonly leaseUntil: number;
  readonly expiresAt: number;
}

interface CompleteParams extends OwnerParams {
  readonly outcome: Uint8Array;
  readonly now: number;
  readonly expiresAt: number;
}

interface RenewParams extends OwnerParams {
  readonly leaseUntil: number;
}

function keyParams(key: RecordKey): KeyParams {
  return { scope: key.scope, method: key.method, key: key.key };
}
