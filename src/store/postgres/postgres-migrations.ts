import type { Pool } from "pg";
import { quoteIdentifier } from "./postgres-identifier.js";

/** One step of the table layout. Versions count up from 1 without gaps. */
interface PostgresMigration {
  readonly version: number;
  /** The DDL, for the quoted and qualified table name, and the bare schema and table names. */
  readonly statements: (qualifiedTable: string, schema: string, table: string) => readonly string[];
}

// Append new steps; never edit a released one: databases out there ran it.
const migrations: readonly PostgresMigration[] = [
  {
    version: 1,
    statements: (table) => [
      `CREATE TABLE ${table} (
  scope text NOT NULL,
  method text NOT NULL,
  key text NOT NULL,
  status text NOT NULL CHECK (status IN ('in_progress', 'completed')),
  fingerprint text NOT NULL,
  owner text NOT NULL,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  lease_until bigint NOT NULL,
  expires_at bigint NOT NULL,
  takeovers integer NOT NULL DEFAULT 0,
  outcome bytea,
  PRIMARY KEY (scope, method, key)
)`,
      // The sweeper finds expired rows and checks their lease from the index
      // alone, without reading the rows (and their outcomes).
      `CREATE INDEX ON ${table} (expires_at, lease_until)`,
    ],
  },
  {
    version: 2,
    statements: (records, schema, table) => {
      const phases = `${quoteIdentifier(schema)}.${quoteIdentifier(postgresPhasesTable(table))}`;
      const resetPhases = `${quoteIdentifier(schema)}.connect_idempotency_reset_phases`;
      return [
        // Phases go with their record: the cascade deletes them on release,
        // sweep and evict.
        `CREATE TABLE ${phases} (
  scope text NOT NULL,
  method text NOT NULL,
  key text NOT NULL,
  name text NOT NULL,
  result bytea NOT NULL,
  recorded_at bigint NOT NULL,
  PRIMARY KEY (scope, method, key, name),
  FOREIGN KEY (scope, method, key) REFERENCES ${records} (scope, method, key) ON DELETE CASCADE
)`,
        // A claim that replaces an expired record updates it in place and
        // leaves `takeovers` at 0 (a takeover, which keeps the phases of the
        // request it resumes, counts up): such a claim starts without phases.
        // One function per schema, for every records table in it; it names
        // the phases table as postgresPhasesTable does.
        `CREATE OR REPLACE FUNCTION ${resetPhases}() RETURNS trigger LANGUAGE plpgsql AS $connect_idempotency$
BEGIN
  EXECUTE format('DELETE FROM %I.%I WHERE scope = $1 AND method = $2 AND key = $3', TG_TABLE_SCHEMA, TG_TABLE_NAME || '_phases')
    USING NEW.scope, NEW.method, NEW.key;
  RETURN NULL;
END
$connect_idempotency$`,
        `CREATE TRIGGER connect_idempotency_reset_phases AFTER UPDATE OF owner ON ${records}
FOR EACH ROW WHEN (NEW.takeovers = 0) EXECUTE FUNCTION ${resetPhases}()`,
      ];
    },
  },
  {
    version: 3,
    // A flag beside `status` rather than a third status, as in the SQLite
    // store, which cannot change a CHECK constraint. With a constant default
    // PostgreSQL adds the column without rewriting the table.
    statements: (table) => [`ALTER TABLE ${table} ADD COLUMN interrupted boolean NOT NULL DEFAULT false`],
  },
  {
    version: 4,
    // NULL on rows written before, which stay readable unverified; without a
    // default PostgreSQL adds the column without rewriting the table.
    statements: (table) => [`ALTER TABLE ${table} ADD COLUMN checksum bytea`],
  },
  {
    version: 5,
    // NULL on rows written before: they replay until `expires_at` and leave
    // no tombstone, as they did. Columns without a default are added without
    // rewriting the table; the partial index holds only records whose body
    // the sweeper's first stage has yet to drop.
    statements: (table) => [
      `ALTER TABLE ${table} ADD COLUMN replay_until bigint`,
      `ALTER TABLE ${table} ADD COLUMN outcome_code integer`,
      `CREATE INDEX ON ${table} (replay_until) WHERE replay_until IS NOT NULL AND outcome IS NOT NULL`,
    ],
  },
];

/** The table of the recovery points (phases) that goes with a records table. */
export function postgresPhasesTable(table: string): string {
  return `${table}_phases`;
}

/** The table layout version this code writes and reads. */
export const postgresSchemaVersion = migrations.length;

/**
 * The table, in each schema, that holds the layout version of every records
 * table in that schema (the same layout as the SQLite store's):
 * `connect_idempotency_meta (table_name text PRIMARY KEY, schema_version integer)`.
 */
export const postgresMetaTable = "connect_idempotency_meta";

/**
 * Brings the table up to `postgresSchemaVersion`, creating the schema and the
 * table on first use. Returns the version found before migrating (0 for a new
 * table).
 *
 * Layout of version 1: the columns of the SQLite store's table, with times
 * as `bigint` milliseconds since the epoch and the outcome as `bytea`;
 * primary key `(scope, method, key)`, and an index on
 * `(expires_at, lease_until)` for the sweeper. A completed record's
 * `lease_until` is its completion time. Scopes, methods and keys are stored
 * through `toPostgresText`, which leaves every string without U+0000 and
 * U+0001 as it is. There is no `replaced` column: a claim tells an insert
 * from an update by `xmax`, and a takeover from an expired record by
 * `takeovers`.
 *
 * Version 2 adds `<table>_phases`, the recovery points of running requests
 * (`AtomicIdempotencyStore.recordPhase`): `scope`, `method`, `key`, `name`
 * (primary key), `result` (`bytea`, a binary `google.protobuf.Any`) and
 * `recorded_at`, with a foreign key to the record that deletes them with it,
 * and a trigger (function `connect_idempotency_reset_phases` in the schema)
 * that deletes them when a claim replaces an expired record.
 *
 * Version 3 adds `interrupted` (`boolean`): true on an `in_progress` row
 * whose owner gave up after an indefinite error
 * (`IdempotencyStore.interrupt`); records expose it as status `interrupted`.
 * `takeovers` counts the takeovers of the current execution, so a record's
 * `attempt` is `takeovers + 1`. Times in rows are the database server's
 * clock, never an application server's.
 *
 * Version 4 adds `checksum` (`bytea`, `recordChecksum` over the stored scope,
 * method, key, fingerprint, status, lifetime `expires_at - created_at` and outcome, computed in
 * SQL by `postgresChecksumSql`), written by every claim and completion and
 * verified when a record is read for a decision; NULL on rows written
 * before, which are read unverified. Scopes, methods and keys with lone
 * UTF-16 surrogates are stored escaped (`toPostgresText`) from this version
 * on; before, PostgreSQL received them as U+FFFD.
 *
 * Version 5 adds `replay_until` (`bigint`) and `outcome_code` (`integer`)
 * for tombstones, as in the SQLite store: a completion with a tombstone
 * period sets the end of the replay window, the outcome's code and, as
 * `expires_at`, the tombstone's end; the sweeper's first stage sets the
 * outcome of a record past `replay_until` to NULL and rewrites its checksum,
 * which covers both columns while `replay_until` is set. A partial index on
 * `(replay_until)` over rows that still have an outcome finds them.
 *
 * An up-to-date table costs two reads and no lock, so that processes running
 * with a role without DDL rights start once the table exists. Otherwise
 * migrators serialize on an advisory lock per schema, so that many processes
 * starting together against an empty database neither fail on each other's
 * CREATE nor run a step twice.
 */
export async function migratePostgresSchema(pool: Pool, schema: string, table: string): Promise<number> {
  const qualifiedTable = `${quoteIdentifier(schema)}.${quoteIdentifier(table)}`;
  const qualifiedMeta = `${quoteIdentifier(schema)}.${quoteIdentifier(postgresMetaTable)}`;
  const client = await pool.connect();
  const readVersion = async (): Promise<number> => {
    const result = await client.query<{ schema_version: number }>(
      `SELECT schema_version FROM ${qualifiedMeta} WHERE table_name = $1`,
      [table],
    );
    return checkVersion(result.rows[0]?.schema_version ?? 0, qualifiedTable);
  };
  try {
    const found = await client.query<{ found: boolean }>("SELECT to_regclass($1) IS NOT NULL AS found", [
      qualifiedMeta,
    ]);
    if (found.rows[0]?.found === true) {
      const version = await readVersion();
      if (version === postgresSchemaVersion) {
        client.release();
        return version;
      }
    }
    await client.query("BEGIN");
    // Waiting for another migrator, or building an index on a big table, may
    // take longer than the statement timeout meant for claims.
    await client.query("SET LOCAL statement_timeout = 0");
    await client.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [`connect-idempotency:${schema}`]);
    // CREATE SCHEMA IF NOT EXISTS would demand the CREATE right on the
    // database even when the schema exists.
    const schemaFound = await client.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [schema]);
    if (schemaFound.rowCount === 0) {
      await client.query(`CREATE SCHEMA ${quoteIdentifier(schema)}`);
    }
    await client.query(`CREATE TABLE IF NOT EXISTS ${qualifiedMeta} (
  table_name text PRIMARY KEY,
  schema_version integer NOT NULL
)`);
    const before = await readVersion();
    for (const migration of migrations.slice(before)) {
      for (const statement of migration.statements(qualifiedTable, schema, table)) {
        await client.query(statement);
      }
    }
    if (before < postgresSchemaVersion) {
      await client.query(
        `INSERT INTO ${qualifiedMeta} (table_name, schema_version) VALUES ($1, $2)
ON CONFLICT (table_name) DO UPDATE SET schema_version = EXCLUDED.schema_version`,
        [table, postgresSchemaVersion],
      );
    }
    await client.query("COMMIT");
    client.release();
    return before;
  } catch (error) {
    // ROLLBACK outside a transaction only warns. When it fails, the
    // connection is gone: drop it from the pool.
    await client.query("ROLLBACK").then(
      () => client.release(),
      (rollbackError: unknown) => client.release(rollbackError instanceof Error ? rollbackError : true),
    );
    throw error;
  }
}

function checkVersion(version: number, qualifiedTable: string): number {
  if (version > postgresSchemaVersion) {
    throw new Error(
      `createPostgresStore: ${qualifiedTable} has schema version ${version}, newer than this version of ` +
        `connect-idempotency knows (${postgresSchemaVersion}); upgrade connect-idempotency`,
    );
  }
  return version;
}
