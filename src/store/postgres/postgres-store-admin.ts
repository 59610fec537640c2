import type { Pool } from "pg";
import type { RecordStatus } from "../idempotency-store.js";
import {
  type FoundRecord,
  type IdempotencyStoreAdmin,
  type RecordSummary,
  type StoreStats,
  tallyRecordCounts,
} from "../idempotency-store-admin.js";
import { createRecordSweeper } from "../record-sweeper.js";
import { quoteIdentifier } from "./postgres-identifier.js";
import {
  defaultPostgresConnectionTimeoutMs,
  defaultPostgresSchema,
  defaultPostgresSweepBatchSize,
  defaultPostgresTable,
} from "./postgres-store-defaults.js";
import { postgresMetaTable, postgresSchemaVersion } from "./postgres-migrations.js";
import {
  createPostgresStatements,
  fromPostgresText,
  postgresClockMs,
  postgresRecordColumns,
  postgresRowIntact,
  postgresRowIntactSql,
  type RecordRow,
  toIdempotencyRecord,
  toPostgresText,
} from "./postgres-statements.js";

/** Options of `openPostgresStoreAdmin`. */
export interface PostgresStoreAdminOptions {
  /** A connection string such as `postgres://app@db/app`. */
  readonly connectionString: string;
  /** The schema of the table. Default `public`, as for the store. */
  readonly schema?: string;
  /** The records table. Default `connect_idempotency_records`, as for the store. */
  readonly table?: string;
  /**
   * Runs every statement in read-only transactions
   * (`default_transaction_read_only`), so that nothing can change a record;
   * `evict` and `sweep` then reject. Default false.
   */
  readonly readonly?: boolean;
}

/**
 * Opens the records table of a PostgreSQL store for inspection and repair,
 * over one connection of its own. Rejects with a one-line message when the
 * database cannot be reached or holds no records table of the layout this
 * version knows; it never creates or migrates anything.
 */
export async function openPostgresStoreAdmin(options: PostgresStoreAdminOptions): Promise<IdempotencyStoreAdmin> {
  const schema = options.schema ?? defaultPostgresSchema;
  const table = options.table ?? defaultPostgresTable;
  const qualified = `${quoteIdentifier(schema, "openPostgresStoreAdmin")}.${quoteIdentifier(table, "openPostgresStoreAdmin")}`;
  const readonly = options.readonly ?? false;
  const pg = await import("pg").catch((cause: unknown) => {
    throw new Error("openPostgresStoreAdmin: needs the optional dependency pg (npm install pg)", { cause });
  });
  const pool: Pool = new pg.default.Pool({
    connectionString: options.connectionString,
    max: 1,
    application_name: "connect-idempotency-admin",
    connectionTimeoutMillis: defaultPostgresConnectionTimeoutMs,
    statement_timeout: 30_000,
    options: readonly ? "-c default_transaction_read_only=on" : undefined,
  });
  pool.on("error", () => {});
  try {
    await checkLayout(pool, schema, table);
  } catch (error) {
    await pool.end();
    throw error;
  }

  const statements = createPostgresStatements(qualified);
  const sweeper = createRecordSweeper({
    deleteBatch: async (limit) => (await pool.query(statements.sweep({ limit }))).rowCount ?? 0,
    tombstoneBatch: async (limit) => (await pool.query(statements.tombstone({ limit }))).rowCount ?? 0,
    intervalMs: 0,
    batchSize: defaultPostgresSweepBatchSize,
  });
  // Every time is the database's, as the store's: an operator's machine
  // whose clock is off must not report live records as expired.
  const clock = `(SELECT ${postgresClockMs} AS read_at) AS clock`;
  const summaryColumns =
    "scope, method, key, status, fingerprint, owner, created_at, updated_at, lease_until, expires_at, takeovers, " +
    "interrupted, NULL::bytea AS outcome, NULL::bytea AS checksum, replay_until, outcome_code, " +
    "coalesce(octet_length(outcome), 0)::int AS outcome_bytes, clock.read_at";
  // A tombstone is a completed row past its replay end, by the database's clock.
  const statusOf =
    "CASE WHEN interrupted THEN 'interrupted' WHEN status = 'completed' AND replay_until <= clock.read_at THEN 'tombstoned' ELSE status END";
  const writable = () => {
    if (readonly) {
      throw new Error(`openPostgresStoreAdmin: ${qualified} was opened read-only`);
    }
  };
  let closed: Promise<void> | undefined;

  return {
    async stats(): Promise<StoreStats> {
      const counts = await pool.query<{ method: string; status: RecordStatus; n: number }>(
        `SELECT method, ${statusOf} AS status, count(*)::int AS n FROM ${qualified} CROSS JOIN ${clock} GROUP BY 1, 2 ORDER BY method`,
      );
      const oldest = await pool.query<SummaryRow>(
        `SELECT ${summaryColumns} FROM ${qualified} CROSS JOIN ${clock}
WHERE status = 'in_progress' AND NOT interrupted ORDER BY created_at LIMIT 1`,
      );
      // The sweeper's condition: expired, and no live lease.
      const expired = await pool.query<{ n: number; read_at: string }>(
        `SELECT count(r.key)::int AS n, clock.read_at FROM ${clock}
LEFT JOIN ${qualified} AS r ON r.expires_at <= clock.read_at AND r.lease_until <= clock.read_at
GROUP BY clock.read_at`,
      );
      const size = await pool.query<{ bytes: string }>("SELECT pg_total_relation_size($1::regclass) AS bytes", [
        qualified,
      ]);
      const oldestRow = oldest.rows[0];
      return {
        location: qualified,
        ...tallyRecordCounts(counts.rows.map((row) => ({ ...row, method: fromPostgresText(row.method) }))),
        oldestInProgress: oldestRow === undefined ? undefined : summaryFromRow(oldestRow),
        expired: expired.rows[0]?.n ?? 0,
        sizeBytes: Number(size.rows[0]?.bytes ?? 0),
        readAt: Number(expired.rows[0]?.read_at),
      };
    },
    async list(filter) {
      const conditions: string[] = [];
      const values: (string | number)[] = [];
      const add = (condition: (param: string) => string, value: string | number) => {
        values.push(value);
        conditions.push(condition(`$${values.length}`));
      };
      if (filter.method !== undefined) add((p) => `method = ${p}`, toPostgresText(filter.method));
      if (filter.scope !== undefined) add((p) => `scope = ${p}`, toPostgresText(filter.scope));
      if (filter.status !== undefined) add((p) => `${statusOf} = ${p}`, filter.status);
      if (filter.olderThanMs !== undefined) add((p) => `created_at < clock.read_at - ${p}::bigint`, filter.olderThanMs);
      values.push(filter.limit);
      const where = conditions.length > 0 ? `WHERE ${conditions.join(" AND ")}` : "";
      const result = await pool.query<SummaryRow>(
        `SELECT ${summaryColumns} FROM ${qualified} CROSS JOIN ${clock} ${where}
ORDER BY created_at DESC, method, scope, key LIMIT $${values.length}`,
        values,
      );
      return result.rows.map(summaryFromRow);
    },
    async find(key, where = {}): Promise<FoundRecord[]> {
      const result = await pool.query<RecordRow>(
        `SELECT ${postgresRecordColumns}, clock.read_at FROM ${qualified} CROSS JOIN ${clock}
WHERE key = $1 AND ($2::text IS NULL OR method = $2) AND ($3::text IS NULL OR scope = $3)
ORDER BY method, scope`,
        [
          toPostgresText(key),
          where.method === undefined ? null : toPostgresText(where.method),
          where.scope === undefined ? null : toPostgresText(where.scope),
        ],
      );
      return result.rows.map((row) => ({ ...toIdempotencyRecord(row), damaged: !postgresRowIntact(row) }));
    },
    async evict(key) {
      writable();
      const result = await pool.query(`DELETE FROM ${qualified} WHERE scope = $1 AND method = $2 AND key = $3`, [
        toPostgresText(key.scope),
        toPostgresText(key.method),
        toPostgresText(key.key),
      ]);
      return result.rowCount === 1;
    },
    async sweep() {
      writable();
      return sweeper.sweep({ limit: Number.POSITIVE_INFINITY });
    },
    async corrupt(limit) {
      // Every row is read and hashed: there is no index to narrow a checksum by.
      const result = await pool.query<SummaryRow>(
        `SELECT ${summaryColumns} FROM ${qualified} CROSS JOIN ${clock}
WHERE NOT ${postgresRowIntactSql(qualified)} ORDER BY created_at, method, scope, key LIMIT $1`,
        [limit],
      );
      return result.rows.map(summaryFromRow);
    },
    async evictCorrupt() {
      writable();
      return (await pool.query(`DELETE FROM ${qualified} WHERE NOT ${postgresRowIntactSql()}`)).rowCount ?? 0;
    },
    close() {
      closed ??= pool.end();
      return closed;
    },
  };
}

interface SummaryRow extends RecordRow {
  readonly outcome_bytes: number;
}

function summaryFromRow(row: SummaryRow): RecordSummary {
  const { outcome: _, ...record } = toIdempotencyRecord(row);
  return { ...record, outcomeBytes: row.outcome_bytes };
}

/** Refuses a database without a records table of the layout this code reads. */
async function checkLayout(pool: Pool, schema: string, table: string): Promise<void> {
  const qualified = `${quoteIdentifier(schema, "openPostgresStoreAdmin")}.${quoteIdentifier(table, "openPostgresStoreAdmin")}`;
  const qualifiedMeta = `${quoteIdentifier(schema, "openPostgresStoreAdmin")}.${quoteIdentifier(postgresMetaTable, "openPostgresStoreAdmin")}`;
  try {
    await pool.query("SELECT 1");
  } catch (error) {
    throw new Error(`openPostgresStoreAdmin: cannot connect: ${messageOf(error)}`);
  }
  let version: number | undefined;
  try {
    const found = await pool.query<{ meta: boolean; records: boolean }>(
      "SELECT to_regclass($1) IS NOT NULL AS meta, to_regclass($2) IS NOT NULL AS records",
      [qualifiedMeta, qualified],
    );
    if (found.rows[0]?.meta === true && found.rows[0].records) {
      const result = await pool.query<{ schema_version: number }>(
        `SELECT schema_version FROM ${qualifiedMeta} WHERE table_name = $1`,
        [table],
      );
      version = result.rows[0]?.schema_version;
    }
  } catch (error) {
    throw new Error(`openPostgresStoreAdmin: cannot read the records table: ${messageOf(error)}`);
  }
  if (version === undefined) {
    throw new Error(`openPostgresStoreAdmin: PostgreSQL has no connect-idempotency records table ${qualified}`);
  }
  if (version !== postgresSchemaVersion) {
    throw new Error(
      `openPostgresStoreAdmin: ${qualified} has schema version ${version}, this version of connect-idempotency reads ${postgresSchemaVersion}` +
        (version < postgresSchemaVersion
          ? "; start a server of this version once to migrate it"
          : "; upgrade connect-idempotency"),
    );
  }
}

function messageOf(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) {
    // Connecting to "localhost" tries every address and reports them all.
    return messageOf(error.errors[0]);
  }
  return error instanceof Error ? error.message : String(error);
}
