import { statSync } from "node:fs";
import Database from "better-sqlite3";
import type { RecordStatus } from "../idempotency-store.js";
import {
  type FoundRecord,
  type IdempotencyStoreAdmin,
  type RecordSummary,
  type StoreStats,
  tallyRecordCounts,
} from "../idempotency-store-admin.js";
import { resolveClock, type Clock } from "../../time/clock.js";
import { createRecordSweeper } from "../record-sweeper.js";
import {
  quoteSqliteIdentifier,
  recordFromSqliteRow,
  sqliteDefaultTable,
  sqliteMetaTable,
  sqliteRecordColumns,
  type SqliteRecordRow,
  sqliteSchemaVersion,
} from "./sqlite-schema.js";
import { isSqliteBusy } from "./sqlite-batch-executor.js";
import { describeSqliteLockHolder } from "./sqlite-lock-holder.js";
import { registerSqliteChecksum, sqliteRowIntact, sqliteRowIntactSql } from "./sqlite-record-checksum.js";
import { createSqliteStatements } from "./sqlite-statements.js";
import { defaultSqliteBusyTimeoutMs, defaultSqliteSweepBatchSize } from "./sqlite-store-options.js";

/** Options of `openSqliteStoreAdmin`. */
export interface SqliteStoreAdminOptions {
  /** The database file of a SQLite store. It must exist. */
  readonly path: string;
  /** The records table. Defaults to the store's default, `connect_idempotency_records`. */
  readonly table?: string;
  /**
   * Opens the file read-only, so that nothing can change it; `evict` and
   * `sweep` then reject. Defaults to false.
   */
  readonly readonly?: boolean;
  /**
   * How long `evict` and `sweep` wait for a server holding the write lock;
   * past it they reject with `SQLITE_BUSY` and a message that names the
   * holding process when it can tell. Defaults to 5000 ms.
   */
  readonly busyTimeoutMs?: number;
  /**
   * The time expiry and ages are judged by, in ms since the epoch; the
   * servers on this machine use the same clock. Defaults to `Date`.
   */
  readonly clock?: Clock;
}

/**
 * Opens the records of a SQLite store for inspection and repair, next to
 * running servers (WAL mode lets it read while they write). Throws with a
 * one-line message when the file is missing, is not a SQLite database, or
 * has no records table of the layout this version knows.
 */
export function openSqliteStoreAdmin(options: SqliteStoreAdminOptions): IdempotencyStoreAdmin {
  const table = options.table ?? sqliteDefaultTable;
  const quoted = quoteSqliteIdentifier(table, "openSqliteStoreAdmin");
  const readonly = options.readonly ?? false;
  const clock = resolveClock("openSqliteStoreAdmin", options, Date);
  const busyTimeoutMs = options.busyTimeoutMs ?? defaultSqliteBusyTimeoutMs;
  if (isDirectory(options.path)) {
    throw new Error(`openSqliteStoreAdmin: ${options.path} is a directory, not a SQLite database file`);
  }
  let db: Database.Database;
  try {
    db = new Database(options.path, { readonly, fileMustExist: true, timeout: busyTimeoutMs });
  } catch (error) {
    throw new Error(`openSqliteStoreAdmin: cannot open SQLite file ${options.path}: ${messageOf(error)}`);
  }
  /** Runs a write, naming the lock and its holder when another connection keeps it too long. */
  const writing = <T>(write: () => T): T => {
    try {
      return write();
    } catch (error) {
      if (!isSqliteBusy(error)) throw error;
      throw Object.assign(
        new Error(
          `openSqliteStoreAdmin: the SQLite file ${options.path} is locked: another connection held its write lock for longer than ` +
            `${busyTimeoutMs} ms${describeSqliteLockHolder(options.path)}`,
          { cause: error },
        ),
        { code: "SQLITE_BUSY" },
      );
    }
  };
  try {
    checkLayout(db, options.path, table);
  } catch (error) {
    db.close();
    throw error;
  }

  const summaryColumns =
    "scope, method, key, status, fingerprint, owner, created_at, updated_at, lease_until, expires_at, takeovers, " +
    "replaced, interrupted, NULL AS outcome, NULL AS checksum, replay_until, outcome_code, coalesce(length(outcome), 0) AS outcome_bytes";
  // A tombstone is a completed row past its replay end, by the clock `@now`.
  const statusOf =
    "CASE WHEN interrupted = 1 THEN 'interrupted' WHEN status = 'completed' AND replay_until <= @now THEN 'tombstoned' ELSE status END";
  const countByMethod = db.prepare<{ now: number }, { method: string; status: RecordStatus; n: number }>(
    `SELECT method, ${statusOf} AS status, count(*) AS n FROM ${quoted} GROUP BY 1, 2 ORDER BY method`,
  );
  const oldestInProgress = db.prepare<[], SummaryRow>(
    `SELECT ${summaryColumns} FROM ${quoted} WHERE status = 'in_progress' AND interrupted = 0 ORDER BY created_at LIMIT 1`,
  );
  // The sweeper's condition: expired, and no live lease.
  const countExpired = db.prepare<{ now: number }, { n: number }>(
    `SELECT count(*) AS n FROM ${quoted} WHERE expires_at <= @now AND lease_until <= @now`,
  );
  const deleteRecord = readonly
    ? undefined
    : db.prepare<{ scope: string; method: string; key: string }>(
        `DELETE FROM ${quoted} WHERE scope = @scope AND method = @method AND key = @key`,
      );
  const statements = readonly ? undefined : createSqliteStatements(db, table, clock);
  registerSqliteChecksum(db);
  // Every row is read and hashed: there is no index to narrow a checksum by.
  const listCorrupt = db.prepare<[limit: number], SummaryRow>(
    `SELECT ${summaryColumns} FROM ${quoted} WHERE NOT ${sqliteRowIntactSql} ORDER BY created_at, method, scope, key LIMIT ?`,
  );
  const deleteCorrupt = readonly ? undefined : db.prepare(`DELETE FROM ${quoted} WHERE NOT ${sqliteRowIntactSql}`);
  const sweeper =
    statements &&
    createRecordSweeper({
      deleteBatch: async (limit) => writing(() => statements.sweep({ limit })),
      tombstoneBatch: async (limit) => writing(() => statements.tombstone({ limit })),
      intervalMs: 0,
      batchSize: defaultSqliteSweepBatchSize,
    });
  const writable = () => {
    if (deleteRecord === undefined || sweeper === undefined || deleteCorrupt === undefined) {
      throw new Error(`openSqliteStoreAdmin: ${options.path} was opened read-only`);
    }
    return { deleteRecord, sweeper, deleteCorrupt };
  };

  return {
    async stats(): Promise<StoreStats> {
      const now = clock.now();
      const oldest = oldestInProgress.get();
      return {
        location: options.path,
        ...tallyRecordCounts(countByMethod.all({ now })),
        oldestInProgress: oldest === undefined ? undefined : summaryFromRow(oldest, now),
        expired: countExpired.get({ now })?.n ?? 0,
        sizeBytes: fileSize(options.path) + fileSize(`${options.path}-wal`),
        readAt: now,
      };
    },
    async list(filter) {
      const conditions: string[] = [];
      const now = clock.now();
      const params: Record<string, string | number> = { limit: filter.limit };
      if (filter.method !== undefined) {
        conditions.push("method = @method");
        params.method = filter.method;
      }
      if (filter.scope !== undefined) {
        conditions.push("scope = @scope");
        params.scope = filter.scope;
      }
      if (filter.status !== undefined) {
        conditions.push(`${statusOf} = @status`);
        params.status = filter.status;
        params.now = now;
      }
      if (filter.olderThanMs !== undefined) {
        conditions.push("created_at < @createdBefore");
        params.createdBefore = now - filter.olderThanMs;
      }
      const where = conditions.length > 0 ? `WHERE ${conditions.join(" AND ")}` : "";
      return db
        .prepare<Record<string, string | number>, SummaryRow>(
          `SELECT ${summaryColumns} FROM ${quoted} ${where} ORDER BY created_at DESC, method, scope, key LIMIT @limit`,
        )
        .all(params)
        .map((row) => summaryFromRow(row, now));
    },
    async find(key, where = {}): Promise<FoundRecord[]> {
      return db
        .prepare<{ key: string; method: string | null; scope: string | null }, SqliteRecordRow>(
          `SELECT ${sqliteRecordColumns} FROM ${quoted}
WHERE key = @key AND (@method IS NULL OR method = @method) AND (@scope IS NULL OR scope = @scope)
ORDER BY method, scope`,
        )
        .all({ key, method: where.method ?? null, scope: where.scope ?? null })
        .map((row) => ({ ...recordFromSqliteRow(row, clock.now()), damaged: !sqliteRowIntact(row) }));
    },
    async evict(key) {
      const { deleteRecord } = writable();
      return writing(() => deleteRecord.run({ scope: key.scope, method: key.method, key: key.key }).changes === 1);
    },
    async sweep() {
      return writable().sweeper.sweep({ limit: Number.POSITIVE_INFINITY });
    },
    async corrupt(limit) {
      const now = clock.now();
      return scanning(options.path, () => listCorrupt.all(limit)).map((row) => summaryFromRow(row, now));
    },
    async evictCorrupt() {
      const { deleteCorrupt: remove } = writable();
      return scanning(options.path, () => remove.run().changes);
    },
    async close() {
      if (db.open) {
        db.close();
      }
    },
  };
}

interface SummaryRow extends SqliteRecordRow {
  readonly outcome_bytes: number;
}

function summaryFromRow(row: SummaryRow, readAt: number): RecordSummary {
  const { outcome: _, ...record } = recordFromSqliteRow(row, readAt);
  return { ...record, outcomeBytes: row.outcome_bytes };
}

/** Refuses a file that is not a store of the layout this code reads. */
function checkLayout(db: Database.Database, path: string, table: string): void {
  let version: number | undefined;
  try {
    const hasMeta =
      db
        .prepare<[string], { n: number }>("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?")
        .get(sqliteMetaTable)?.n === 1;
    version = hasMeta
      ? db
          .prepare<[string], { schema_version: number }>(
            `SELECT schema_version FROM ${sqliteMetaTable} WHERE table_name = ?`,
          )
          .get(table)?.schema_version
      : undefined;
  } catch (error) {
    throw new Error(`openSqliteStoreAdmin: cannot read ${path}: ${messageOf(error)}`);
  }
  if (version === undefined) {
    throw new Error(`openSqliteStoreAdmin: ${path} has no connect-idempotency records table ${table}`);
  }
  if (version !== sqliteSchemaVersion) {
    throw new Error(
      `openSqliteStoreAdmin: ${path}: table ${table} has schema version ${version}, this version of connect-idempotency reads ${sqliteSchemaVersion}` +
        (version < sqliteSchemaVersion
          ? "; start a server of this version once to migrate it"
          : "; upgrade connect-idempotency"),
    );
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false })?.isDirectory() === true;
  } catch {
    return false;
  }
}

/**
 * Runs a scan of every record; a page SQLite cannot read fails it with what
 * to do, since no checksum can be compared then.
 */
function scanning<T>(path: string, scan: () => T): T {
  try {
    return scan();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && code.startsWith("SQLITE_CORRUPT")) {
      throw new Error(
        `openSqliteStoreAdmin: ${path}: ${messageOf(error)}: some pages cannot be read at all; restore the file from a backup, or recover ` +
          `it (sqlite3 ${path} ".recover" | sqlite3 recovered.db) and run this again on the recovered file`,
        { cause: error },
      );
    }
    throw error;
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    // No WAL file: the last connection checkpointed and removed it.
    return 0;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
