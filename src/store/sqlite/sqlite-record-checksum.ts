import type { Database } from "better-sqlite3";
import { type ChecksumColumnsSql, checksumOwnColumns, recordChecksum, rowChecksumMatches } from "../record-checksum.js";
import type { SqliteRecordRow } from "./sqlite-schema.js";

/** The SQL function `registerSqliteChecksum` adds to a connection. */
const sqlFunction = "connect_idempotency_checksum";

/**
 * Adds `connect_idempotency_checksum(scope, method, key, fingerprint,
 * status, lifetime_ms, outcome, replay_lifetime_ms, outcome_code)` to a connection: `recordChecksum` as SQL,
 * for statements that write a checksum from a row's own columns (a
 * completion knows no fingerprint) or compare one inside a statement. It
 * returns NULL for arguments of the wrong type, which a damaged column can
 * come back as, so that a comparison with it fails.
 */
export function registerSqliteChecksum(db: Database): void {
  db.function(
    sqlFunction,
    { deterministic: true },
    (scope, method, key, fingerprint, status, lifetimeMs, outcome, replayLifetimeMs, outcomeCode) => {
      if (
        typeof scope !== "string" ||
        typeof method !== "string" ||
        typeof key !== "string" ||
        typeof fingerprint !== "string" ||
        typeof status !== "string" ||
        typeof lifetimeMs !== "number" ||
        !Number.isSafeInteger(lifetimeMs) ||
        !(outcome === null || outcome instanceof Uint8Array) ||
        !(
          replayLifetimeMs === null ||
          (typeof replayLifetimeMs === "number" && Number.isSafeInteger(replayLifetimeMs))
        ) ||
        !(outcomeCode === null || (typeof outcomeCode === "number" && Number.isInteger(outcomeCode)))
      ) {
        return null;
      }
      return recordChecksum({
        scope,
        method,
        key,
        fingerprint,
        status,
        lifetimeMs,
        outcome,
        replayLifetimeMs,
        outcomeCode,
      });
    },
  );
}

/** SQL expressions for the arguments of the checksum function. */
export type SqliteChecksumColumns = ChecksumColumnsSql;

/**
 * The checksum of a row from its own columns, as SQL; the expressions
 * given (SQL or `?`) replace those columns. Needs `registerSqliteChecksum`
 * on the connection.
 */
export function sqliteChecksumSql(replace: Partial<SqliteChecksumColumns> = {}): string {
  const c = { ...checksumOwnColumns, ...replace };
  return `${sqlFunction}(${c.scope}, ${c.method}, ${c.key}, ${c.fingerprint}, ${c.status}, ${c.lifetimeMs}, ${c.outcome}, ${c.replayLifetimeMs}, ${c.outcomeCode})`;
}

/**
 * SQL that is true for a row whose checksum matches its columns, and for a
 * row written before the store kept checksums (NULL).
 */
export const sqliteRowIntactSql = `(checksum IS NULL OR checksum = ${sqliteChecksumSql()})`;

/** Whether a row read back matches its checksum (or has none, from before version 4). */
export function sqliteRowIntact(row: SqliteRecordRow): boolean {
  // Field by field rather than a spread of the row: every read for a
  // decision (each replay) checks one.
  return rowChecksumMatches({
    scope: row.scope,
    method: row.method,
    key: row.key,
    fingerprint: row.fingerprint,
    status: row.status,
    outcome: row.outcome,
    checksum: row.checksum,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    replayUntil: row.replay_until,
    outcomeCode: row.outcome_code,
  });
}
