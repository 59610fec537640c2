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
import type { Clock } from "../../time/clock.js";
import { recordChecksum } from "../record-checksum.js";
import { createStoreCorruptError } from "../store-corrupt-error.js";
import {
  registerSqliteChecksum,
  sqliteChecksumSql,
  sqliteRowIntact,
  sqliteRowIntactSql,
} from "./sqlite-record-checksum.js";
import {
  quoteSqliteIdentifier,
  recordFromSqliteRow,
  sqliteRecordColumns,
  type SqliteRecordRow,
} from "./sqlite-schema.js";

/**
 * Every store operation on one records table, as synchronous functions over
 * statements prepared once. They run inside a transaction of the store's
 * executor (`SqliteStore.executor.run`), so that code completing a key
 * together with its own writes shares the store's SQL. Each reads the
 * store's clock when it runs, not when it was queued.
 *
 * Expiry and lease ends are inclusive: a record whose `expires_at` equals
 * now is expired, a lease whose `lease_until` equals now has ended. Writes
 * of an execution match its owner token and attempt (`takeovers` holds
 * `attempt - 1`), and a running claim is `in_progress` and not interrupted.
 *
 * Claims and completions write the row's checksum (`recordChecksum`); a
 * record read for a decision (`get`, the record a claim found) is checked
 * against it, and a claim never replaces a record that fails the check. A
 * damaged record, or a read SQLite answers with `SQLITE_CORRUPT`, throws a
 * `StoreCorruptError`: it is never replayed and never taken for absent.
 */
export interface SqliteStatements {
  /**
   * One upsert against the primary key: inserts, replaces a record that
   * counts as absent (expired, with no live lease: `expired`) or a claim
   * with the same fingerprint that was interrupted or whose lease and grace
   * ended (`takeover`), or else reads the record that holds the key. Needs a
   * transaction, so that the record it reads is the one that blocked it.
   */
  claim(input: ClaimInput): ClaimResult;
  /** Reads one record. */
  get(key: RecordKey): IdempotencyRecord | undefined;
  /**
   * Stores the outcome if `owner` and `attempt` hold the running claim; true
   * too when they completed it already (a retried completion).
   */
  complete(input: CompleteInput): boolean;
  /** Marks the running claim of `owner` and `attempt` interrupted and ends its lease; true too when it already is. */
  interrupt(input: OwnerInput): boolean;
  /** Deletes the claim if `owner` and `attempt` hold it and it is still running. */
  release(input: OwnerInput): boolean;
  /** Sets the lease end if `owner` and `attempt` hold the running claim. */
  renew(input: RenewInput): boolean;
  /** Deletes up to `limit` expired records whose lease ended, in one statement; returns how many. */
  sweep(input: SweepInput): number;
  /** Drops the outcome of up to `limit` intact records past their replay window, in one statement; returns how many. */
  tombstone(input: SweepInput): number;
  /** Whether `owner` and `attempt` hold the running claim, for work that completes it later in the same transaction. */
  holds(input: OwnerInput): boolean;
}

/**
 * Prepares the statements of a records table that `migrateSqliteSchema`
 * created. `clock` is the store's time in ms since the epoch.
 */
export function createSqliteStatements(db: Database, table: string, clock: Clock): SqliteStatements {
  const quoted = quoteSqliteIdentifier(table);
  registerSqliteChecksum(db);
  // Positional parameters throughout: binding named ones reads each from a
  // JS object, which costs more than the statement itself on the hot path.
  const keyMatch = "scope = ? AND method = ? AND key = ?";
  const running = "owner = ? AND takeovers = ? AND status = 'in_progress' AND interrupted = 0";
  // In the upsert, `excluded.*` holds the values of the attempted insert, so
  // the conditions below need no parameters of their own: `updated_at` is now.
  // A record counts as absent once it expired, unless an in-progress claim
  // still holds a lease: the sweeper's own rule, so a claim never depends on
  // whether the sweeper already ran (an expired record it deleted would be
  // claimed afresh too). A completed or interrupted record's lease ended when
  // it completed or was interrupted.
  const expired =
    "(expires_at <= excluded.updated_at AND (status = 'completed' OR lease_until <= excluded.updated_at))";
  // Only the same payload may take over an unfinished claim: another payload
  // under a key that may already have had effects is a client bug. A running
  // claim is taken over only once its lease and the grace period (the one
  // parameter after the values) passed, an interrupted one at once.
  const takeover =
    "(status = 'in_progress' AND fingerprint = excluded.fingerprint AND (interrupted = 1 OR lease_until + ? <= excluded.updated_at))";
  // A damaged record is never replaced: a bad `expires_at` would make a
  // completed record look expired and run its request again. The check
  // comes last, so that it only runs for a record about to be replaced; the
  // record then reads back as damaged. Every other column of a claimed
  // record is what the claim wrote, so only
  // these come back. SQLite evaluates SET against the old row, and the WHERE
  // let only `expired` or `takeover` through, so `expired` alone tells them
  // apart; it comes first so that the parameter of `takeover` stays last.
  // The claim's checksum (a parameter) counts the lifetime from now; a
  // takeover keeps the first claim's `created_at`, so its checksum is
  // computed here, from the old row's.
  const takeoverChecksum = sqliteChecksumSql({
    scope: "excluded.scope",
    method: "excluded.method",
    key: "excluded.key",
    fingerprint: "excluded.fingerprint",
    status: "'in_progress'",
    lifetimeMs: "excluded.expires_at - created_at",
    outcome: "NULL",
    replayLifetimeMs: "NULL",
    outcomeCode: "NULL",
  });
  const claim = db.prepare<ClaimParams, ClaimedRow>(`INSERT INTO ${quoted}
  (scope, method, key, status, fingerprint, owner, created_at, updated_at, lease_until, expires_at, takeovers, replaced, interrupted, outcome, checksum)
VALUES (?, ?, ?, 'in_progress', ?, ?, ?, ?, ?, ?, 0, 'none', 0, NULL, ?)
ON CONFLICT (scope, method, key) DO UPDATE SET
  status = 'in_progress',
  fingerprint = excluded.fingerprint,
  owner = excluded.owner,
  created_at = CASE WHEN ${expired} THEN excluded.created_at ELSE created_at END,
  updated_at = excluded.updated_at,
  lease_until = excluded.lease_until,
  expires_at = excluded.expires_at,
  takeovers = CASE WHEN ${expired} THEN 0 ELSE takeovers + 1 END,
  replaced = CASE WHEN ${expired} THEN 'expired' ELSE 'takeover' END,
  interrupted = 0,
  outcome = NULL,
  replay_until = NULL,
  outcome_code = NULL,
  checksum = CASE WHEN ${expired} THEN excluded.checksum ELSE ${takeoverChecksum} END
WHERE (${expired} OR ${takeover}) AND ${sqliteRowIntactSql}
RETURNING created_at, takeovers, replaced`);
  const get = db.prepare<KeyParams, SqliteRecordRow>(`SELECT ${sqliteRecordColumns} FROM ${quoted} WHERE ${keyMatch}`);
  // The checksum comes from the row's own scope, method, key and fingerprint:
  // a completion is not told the fingerprint.
  const complete = db.prepare<CompleteParams>(`UPDATE ${quoted}
SET status = 'completed', outcome = ?, updated_at = ?, lease_until = ?, expires_at = ?, replay_until = ?, outcome_code = ?,
  checksum = ${sqliteChecksumSql({ status: "'completed'", lifetimeMs: "? - created_at", outcome: "?", replayLifetimeMs: "? - created_at", outcomeCode: "?" })}
WHERE ${keyMatch} AND ${running}`);
  // Only asked when the completion changed nothing: was it this execution's own, committed earlier?
  const completedBy = db.prepare<OwnerParams, { done: number }>(
    `SELECT 1 AS done FROM ${quoted} WHERE ${keyMatch} AND owner = ? AND takeovers = ? AND status = 'completed'`,
  );
  // Interrupting twice keeps the first end of the lease.
  const interrupt = db.prepare<InterruptParams>(`UPDATE ${quoted}
SET interrupted = 1, lease_until = CASE WHEN interrupted = 1 THEN lease_until ELSE ? END, updated_at = ?
WHERE ${keyMatch} AND owner = ? AND takeovers = ? AND status = 'in_progress'`);
  // A completed record is never released: that would drop a stored outcome.
  const release = db.prepare<OwnerParams>(`DELETE FROM ${quoted} WHERE ${keyMatch} AND ${running}`);
  const renew = db.prepare<RenewParams>(`UPDATE ${quoted} SET lease_until = ? WHERE ${keyMatch} AND ${running}`);
  const holds = db.prepare<OwnerParams, { held: number }>(
    `SELECT 1 AS held FROM ${quoted} WHERE ${keyMatch} AND ${running}`,
  );
  // The first stage of sweeping: a record past its replay window keeps its
  // key, fingerprint, times and code as a tombstone, and its checksum is
  // rewritten for the row without the body. Only an intact row is
  // rewritten, or the new checksum would vouch for damage; a damaged one
  // keeps its body and its alarm. The subquery walks the partial index.
  const tombstone = db.prepare<[now: number, limit: number]>(`UPDATE ${quoted}
SET outcome = NULL, checksum = ${sqliteChecksumSql({ outcome: "NULL" })}
WHERE rowid IN (
  SELECT rowid FROM ${quoted} WHERE replay_until <= ? AND replay_until IS NOT NULL AND outcome IS NOT NULL AND status = 'completed' AND ${sqliteRowIntactSql} LIMIT ?
)`);
  const sweep = db.prepare<[now: number, now: number, limit: number]>(`DELETE FROM ${quoted} WHERE rowid IN (
  SELECT rowid FROM ${quoted} WHERE expires_at <= ? AND lease_until <= ? LIMIT ?
)`);

  // A record read for a decision: damage throws rather than answer or look absent.
  const read = (key: RecordKey, now: number): IdempotencyRecord | undefined => {
    const row = corruptionChecked(key, () => get.get(key.scope, key.method, key.key));
    if (row === undefined) {
      return undefined;
    }
    if (!sqliteRowIntact(row)) {
      throw createStoreCorruptError(key, "its checksum does not match what it holds");
    }
    return recordFromSqliteRow(row, now);
  };

  return {
    claim(input) {
      const { key, fingerprint, owner, leaseMs, graceMs, expiresInMs } = input;
      const now = clock.now();
      const leaseUntil = now + leaseMs;
      const expiresAt = now + expiresInMs;
      const row = corruptionChecked(key, () =>
        claim.get(
          key.scope,
          key.method,
          key.key,
          fingerprint,
          owner,
          now,
          now,
          leaseUntil,
          expiresAt,
          claimChecksum(key, fingerprint, expiresInMs),
          graceMs,
        ),
      );
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
            attempt: row.takeovers + 1,
            createdAt: row.created_at,
            updatedAt: now,
            leaseUntil,
            expiresAt,
            outcome: undefined,
            readAt: now,
          },
        };
      }
      const holder = read(key, now);
      if (holder === undefined) {
        throw new Error(
          `createSqliteStore: claim of ${key.method} found neither a free key nor a record; run it in a transaction`,
        );
      }
      return { kind: "existing", record: holder };
    },
    get(key) {
      return read(key, clock.now());
    },
    complete({ key, owner, attempt, outcome, retentionMs, tombstoneMs = 0, outcomeCode = 0 }) {
      const now = clock.now();
      const takeovers = attempt - 1;
      // Without a tombstone period the record is what it was before
      // tombstones: replayed until it expires, no replay end, same checksum.
      const replayUntil = tombstoneMs > 0 ? now + retentionMs : null;
      const code = replayUntil === null ? null : outcomeCode;
      const expiresAt = now + retentionMs + tombstoneMs;
      const params: CompleteParams = [
        outcome,
        now,
        now,
        expiresAt,
        replayUntil,
        code,
        expiresAt,
        outcome,
        replayUntil,
        code,
        key.scope,
        key.method,
        key.key,
        owner,
        takeovers,
      ];
      if (complete.run(...params).changes === 1) {
        return true;
      }
      return completedBy.get(key.scope, key.method, key.key, owner, takeovers) !== undefined;
    },
    interrupt({ key, owner, attempt }) {
      const now = clock.now();
      return interrupt.run(now, now, key.scope, key.method, key.key, owner, attempt - 1).changes === 1;
    },
    release({ key, owner, attempt }) {
      return release.run(key.scope, key.method, key.key, owner, attempt - 1).changes === 1;
    },
    renew({ key, owner, attempt, leaseMs }) {
      return renew.run(clock.now() + leaseMs, key.scope, key.method, key.key, owner, attempt - 1).changes === 1;
    },
    sweep({ limit }) {
      const now = clock.now();
      return sweep.run(now, now, limit).changes;
    },
    tombstone({ limit }) {
      return tombstone.run(clock.now(), limit).changes;
    },
    holds({ key, owner, attempt }) {
      return holds.get(key.scope, key.method, key.key, owner, attempt - 1) !== undefined;
    },
  };
}

/**
 * The checksum a claim writes, computed here rather than by the SQL
 * function: one call into SQLite fewer on the hot path. Null for input of
 * the wrong type, which then fails in the statement as before.
 */
function claimChecksum(key: RecordKey, fingerprint: string, lifetimeMs: number): Buffer | null {
  if (
    typeof key.scope !== "string" ||
    typeof key.method !== "string" ||
    typeof key.key !== "string" ||
    typeof fingerprint !== "string"
  ) {
    return null;
  }
  return recordChecksum({
    scope: asSqliteReturnsIt(key.scope),
    method: asSqliteReturnsIt(key.method),
    key: asSqliteReturnsIt(key.key),
    fingerprint,
    status: "in_progress",
    lifetimeMs,
    outcome: null,
  });
}

const anySurrogate = /[\ud800-\udfff]/;
const loneSurrogates = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * A string as better-sqlite3 reads it back: SQLite keeps a lone surrogate as
 * its 3 bytes (so such strings stay distinct keys), and reading decodes them
 * as invalid UTF-8, one U+FFFD per byte. A checksum hashes what is read.
 */
function asSqliteReturnsIt(text: string): string {
  return anySurrogate.test(text) ? text.replace(loneSurrogates, "\ufffd\ufffd\ufffd") : text;
}

/**
 * Runs a statement on one key, turning SQLite's own report of a malformed
 * page into a `StoreCorruptError`: a retry would meet the same page.
 */
function corruptionChecked<T>(key: RecordKey, run: () => T): T {
  try {
    return run();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && code.startsWith("SQLITE_CORRUPT")) {
      throw createStoreCorruptError(key, "SQLite reports a malformed database page", error);
    }
    throw error;
  }
}

type KeyParams = [scope: string, method: string, key: string];

type OwnerParams = [...KeyParams, owner: string, takeovers: number];

type InterruptParams = [leaseUntil: number, updatedAt: number, ...OwnerParams];

type RenewParams = [leaseUntil: number, ...OwnerParams];

type ClaimParams = [
  ...KeyParams,
  fingerprint: string,
  owner: string,
  createdAt: number,
  updatedAt: number,
  leaseUntil: number,
  expiresAt: number,
  checksum: Uint8Array | null,
  graceMs: number,
];

type CompleteParams = [
  outcome: Uint8Array,
  updatedAt: number,
  leaseUntil: number,
  expiresAt: number,
  replayUntil: number | null,
  outcomeCode: number | null,
  checksumExpiresAt: number,
  checksumOutcome: Uint8Array,
  checksumReplayUntil: number | null,
  checksumOutcomeCode: number | null,
  ...OwnerParams,
];

/** What a successful claim returns: the columns it did not take from its input. */
interface ClaimedRow {
  readonly created_at: number;
  readonly takeovers: number;
  readonly replaced: "none" | "expired" | "takeover";
}
