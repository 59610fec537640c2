import type { Pool } from "pg";
import { quoteIdentifier } from "./postgres-identifier.js";

/** One step of the table layout. Versions count up from 1 without gaps. */
interface PostgresMigration {
  readonly version: number;
  /** The DDL, for the quoted and qualified table name. */
  readonly statements: (qualifiedTable: string) => readonly string[];
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
];

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
      for (const statement of migration.statements(qualifiedTable)) {
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
      `connect-idempotency: ${qualifiedTable} has schema version ${version}, newer than this version of ` +
        `connect-idempotency knows (${postgresSchemaVersion}); upgrade connect-idempotency`,
    );
  }
  return version;
}
