import type { Database } from "better-sqlite3";
import type { IdempotencyRecord } from "../idempotency-store.js";

/**
 * The table that records which schema version each records table is at. One
 * database file may hold several records tables (the store's `table` option),
 * so the version is kept per table rather than in `PRAGMA user_version`.
 *
 * ```sql
 * CREATE TABLE connect_idempotency_meta (
 *   table_name     TEXT PRIMARY KEY,
 *   schema_version INTEGER NOT NULL
 * )
 * ```
 */
export const sqliteMetaTable = "connect_idempotency_meta";

/** The records table a store uses unless told otherwise. */
export const sqliteDefaultTable = "connect_idempotency_records";

/** One step of the layout of a records table. Versions count up from 1 without gaps. */
interface SqliteMigration {
  readonly version: number;
  /** The DDL, for the quoted table name and the bare one (to name indexes). */
  readonly statements: (quotedTable: string, table: string) => readonly string[];
}

// Append new steps; never edit a released one: databases out there ran it.
const migrations: readonly SqliteMigration[] = [
  {
    version: 1,
    statements: (quoted, table) => [
      `CREATE TABLE ${quoted} (
  scope       TEXT    NOT NULL,
  method      TEXT    NOT NULL,
  key         TEXT    NOT NULL,
  status      TEXT    NOT NULL CHECK (status IN ('in_progress', 'completed')),
  fingerprint TEXT    NOT NULL,
  owner       TEXT    NOT NULL,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  lease_until INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL,
  takeovers   INTEGER NOT NULL DEFAULT 0,
  replaced    TEXT    NOT NULL DEFAULT 'none' CHECK (replaced IN ('none', 'expired', 'takeover')),
  outcome     BLOB,
  PRIMARY KEY (scope, method, key)
)`,
      // The sweeper scans by expiry and filters on the lease from the index
      // alone, without touching the rows (and their outcome blobs).
      `CREATE INDEX ${quoteSqliteIdentifier(`${table}_sweep`)} ON ${quoted} (expires_at, lease_until)`,
    ],
  },
  {
    version: 2,
    statements: (quoted, table) => {
      const phases = quoteSqliteIdentifier(sqlitePhasesTable(table));
      const forget = `DELETE FROM ${phases} WHERE scope = OLD.scope AND method = OLD.method AND key = OLD.key;`;
      return [
        `CREATE TABLE ${phases} (
  scope       TEXT    NOT NULL,
  method      TEXT    NOT NULL,
  key         TEXT    NOT NULL,
  name        TEXT    NOT NULL,
  result      BLOB    NOT NULL,
  recorded_at INTEGER NOT NULL,
  PRIMARY KEY (scope, method, key, name)
)`,
        // Phases live and die with their record, whoever deletes it (release,
        // sweep, an operator's evict from another connection), and a claim
        // that replaces an expired record starts without them. A takeover
        // keeps them: that is what a resumed request reads.
        `CREATE TRIGGER ${quoteSqliteIdentifier(`${table}_forget_phases`)} AFTER DELETE ON ${quoted} BEGIN ${forget} END`,
        `CREATE TRIGGER ${quoteSqliteIdentifier(`${table}_reset_phases`)} AFTER UPDATE OF owner ON ${quoted}
WHEN NEW.replaced = 'expired' BEGIN ${forget} END`,
      ];
    },
  },
  {
    version: 3,
    // SQLite cannot change the CHECK constraint of `status`, so an
    // interrupted claim is an in-progress row with this flag set.
    statements: (quoted) => [
      `ALTER TABLE ${quoted} ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0 CHECK (interrupted IN (0, 1))`,
    ],
  },
  {
    version: 4,
    // NULL on rows written before: they stay readable, unverified.
    statements: (quoted) => [`ALTER TABLE ${quoted} ADD COLUMN checksum BLOB`],
  },
  {
    version: 5,
    // NULL on rows written before: they replay until `expires_at` and
    // leave no tombstone, as they did. The partial index holds only records
    // whose body the sweeper's first stage has yet to drop, so it shrinks as
    // tombstones form and that stage never reads the others.
    statements: (quoted, table) => [
      `ALTER TABLE ${quoted} ADD COLUMN replay_until INTEGER`,
      `ALTER TABLE ${quoted} ADD COLUMN outcome_code INTEGER`,
      `CREATE INDEX ${quoteSqliteIdentifier(`${table}_tombstone`)} ON ${quoted} (replay_until) WHERE replay_until IS NOT NULL AND outcome IS NOT NULL`,
    ],
  },
];

/** The phases table that goes with a records table. */
export function sqlitePhasesTable(table: string): string {
  return `${table}_phases`;
}

/** The layout version of records tables this code writes and reads. */
export const sqliteSchemaVersion = migrations.length;

/**
 * Brings a records table up to `sqliteSchemaVersion`, creating it on first
 * use, and returns the version found before (0 for a new table).
 *
 * Layout of version 1 (times are milliseconds since the epoch):
 *
 * | column        | type    | meaning                                                             |
 * |---------------|---------|---------------------------------------------------------------------|
 * | `scope`       | TEXT    | tenant or principal; part of the primary key                        |
 * | `method`      | TEXT    | fully qualified method; part of the primary key                     |
 * | `key`         | TEXT    | canonical request ID; part of the primary key                       |
 * | `status`      | TEXT    | `in_progress` or `completed`                                        |
 * | `fingerprint` | TEXT    | hex SHA-256 of the request without its request ID                  |
 * | `owner`       | TEXT    | owner token of the latest claim                                     |
 * | `created_at`  | INTEGER | first claim (kept across takeovers)                                 |
 * | `updated_at`  | INTEGER | last claim or completion                                            |
 * | `lease_until` | INTEGER | end of the claim's lease; the completion time once completed        |
 * | `expires_at`  | INTEGER | after it the record counts as absent and may be swept               |
 * | `takeovers`   | INTEGER | how often a dead claim with the same fingerprint was taken over     |
 * | `replaced`    | TEXT    | what the latest claim replaced: `none`, `expired` or `takeover`     |
 * | `outcome`     | BLOB    | binary `idempotency.v1.StoredOutcome`; NULL while in progress       |
 *
 * Primary key `(scope, method, key)`; index `<table>_sweep` on
 * `(expires_at, lease_until)` for the sweeper.
 *
 * Version 2 adds `<table>_phases`, the recovery points of running requests
 * (`AtomicIdempotencyStore.recordPhase`): `scope`, `method`, `key`, `name`
 * (primary key), `result` (BLOB, a binary `google.protobuf.Any`) and
 * `recorded_at`. Triggers delete a record's phases when the record is
 * deleted, and when a claim replaces an expired record.
 *
 * Version 3 adds `interrupted` (INTEGER, 0 or 1): 1 on an `in_progress` row
 * whose owner gave up after an indefinite error (`IdempotencyStore.interrupt`).
 * Records expose such a row as status `interrupted`. `takeovers` counts the
 * takeovers of the current execution, so a record's `attempt` is
 * `takeovers + 1`.
 *
 * Version 4 adds `checksum` (BLOB, `recordChecksum` over scope, method, key,
 * fingerprint, status, lifetime `expires_at - created_at` and outcome), written by every claim and
 * completion and verified when a record is read for a decision; NULL on rows
 * written before, which are read unverified.
 *
 * Version 5 adds `replay_until` (INTEGER) and `outcome_code` (INTEGER) for
 * tombstones: a completion with a tombstone period sets `replay_until` to
 * the end of the replay window, `outcome_code` to the outcome's code (0 for
 * success) and `expires_at` to the tombstone's end. Past `replay_until` the
 * record is a tombstone; the sweeper sets its `outcome` to NULL and rewrites
 * its checksum, which covers both columns while `replay_until` is set (and
 * hashes as before while it is NULL). Index `<table>_tombstone` on
 * `(replay_until)`, partial over rows that still have an outcome, finds them.
 *
 * Runs in one `BEGIN IMMEDIATE` transaction, so that several processes
 * opening a new file at once serialize on the write lock and each step runs
 * exactly once.
 */
export function migrateSqliteSchema(db: Database, table: string): number {
  const quoted = quoteSqliteIdentifier(table);
  const migrate = db.transaction((): number => {
    db.exec(`CREATE TABLE IF NOT EXISTS ${sqliteMetaTable} (
  table_name     TEXT PRIMARY KEY,
  schema_version INTEGER NOT NULL
)`);
    const row = db
      .prepare<[string], { schema_version: number }>(
        `SELECT schema_version FROM ${sqliteMetaTable} WHERE table_name = ?`,
      )
      .get(table);
    const before = row?.schema_version ?? 0;
    if (before > sqliteSchemaVersion) {
      throw new Error(
        `createSqliteStore: SQLite table ${table} has schema version ${before}, newer than the ${sqliteSchemaVersion} this version of connect-idempotency knows; upgrade connect-idempotency`,
      );
    }
    for (const migration of migrations.slice(before)) {
      for (const statement of migration.statements(quoted, table)) {
        db.exec(statement);
      }
    }
    if (before < sqliteSchemaVersion) {
      db.prepare(
        `INSERT INTO ${sqliteMetaTable} (table_name, schema_version) VALUES (?, ?)
ON CONFLICT (table_name) DO UPDATE SET schema_version = excluded.schema_version`,
      ).run(table, sqliteSchemaVersion);
    }
    return before;
  });
  return migrate.immediate();
}

/**
 * Quotes a table or index name, which must be a plain identifier; `api`, the
 * function whose option named it, starts the error message.
 */
export function quoteSqliteIdentifier(name: string, api = "createSqliteStore"): string {
  // Plain identifiers only: the name is spliced into SQL, and a name that
  // needs escaping is almost certainly a configuration mistake.
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name)) {
    throw new Error(`${api}: invalid SQLite table name ${JSON.stringify(name)}: use letters, digits and underscores`);
  }
  return `"${name}"`;
}

/** The columns of a records table in the order `SqliteRecordRow` lists them. */
export const sqliteRecordColumns =
  "scope, method, key, status, fingerprint, owner, created_at, updated_at, lease_until, expires_at, takeovers, replaced, interrupted, outcome, checksum, replay_until, outcome_code";

/** One row of a records table as better-sqlite3 returns it. */
export interface SqliteRecordRow {
  readonly scope: string;
  readonly method: string;
  readonly key: string;
  /** `in_progress` or `completed`: `interrupted` is the `interrupted` column, `tombstoned` follows from `replay_until`. */
  readonly status: "in_progress" | "completed";
  readonly fingerprint: string;
  readonly owner: string;
  readonly created_at: number;
  readonly updated_at: number;
  readonly lease_until: number;
  readonly expires_at: number;
  readonly takeovers: number;
  readonly replaced: "none" | "expired" | "takeover";
  readonly interrupted: 0 | 1;
  readonly outcome: Buffer | null;
  /** `recordChecksum` of the row; NULL on rows written before schema version 4. */
  readonly checksum: Buffer | null;
  /** End of the replay window of a record with a tombstone; NULL otherwise (and before schema version 5). */
  readonly replay_until: number | null;
  /** The outcome's code, set with `replay_until`. */
  readonly outcome_code: number | null;
}

/** Converts a row, read when the store's clock said `readAt`, into a record. */
export function recordFromSqliteRow(row: SqliteRecordRow, readAt: number): IdempotencyRecord {
  return {
    scope: row.scope,
    method: row.method,
    key: row.key,
    status:
      row.interrupted === 1
        ? "interrupted"
        : // Without its body it is a tombstone whatever the clock says now: a
          // clock set back must not replay an empty outcome.
          row.status === "completed" &&
            row.replay_until !== null &&
            (row.replay_until <= readAt || row.outcome === null)
          ? "tombstoned"
          : row.status,
    fingerprint: row.fingerprint,
    owner: row.owner,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    leaseUntil: row.lease_until,
    expiresAt: row.expires_at,
    replayUntil: row.replay_until ?? undefined,
    outcomeCode: row.outcome_code ?? undefined,
    attempt: row.takeovers + 1,
    // A plain Uint8Array view: callers compare and decode it like any other store's.
    outcome:
      row.outcome === null
        ? undefined
        : new Uint8Array(row.outcome.buffer, row.outcome.byteOffset, row.outcome.byteLength),
    readAt,
  };
}
