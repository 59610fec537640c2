import type { Pool, PoolClient } from "pg";
import type { AtomicIdempotencyStore } from "../atomic-idempotency-store.js";
import type { ClaimInput, CompleteInput, IdempotencyRecord, RecordKey, RenewInput } from "../idempotency-store.js";
import { createRecordSweeper, type RecordSweeper, type SweepReport } from "../record-sweeper.js";
import { createStoreCorruptError } from "../store-corrupt-error.js";
import { quoteIdentifier } from "./postgres-identifier.js";
import { createPostgresAtomicOperations } from "./postgres-atomic-operations.js";
import { migratePostgresSchema, postgresPhasesTable } from "./postgres-migrations.js";
import { createPostgresStatementBatcher } from "./postgres-statement-batcher.js";
import {
  defaultPostgresConnectionTimeoutMs,
  defaultPostgresMaxConnections,
  defaultPostgresSchema,
  defaultPostgresStatementTimeoutMs,
  defaultPostgresSweepBatchSize,
  defaultPostgresSweepIntervalMs,
  defaultPostgresTable,
} from "./postgres-store-defaults.js";
import {
  type ClaimRow,
  createPostgresStatements,
  type PostgresStatements,
  postgresRowIntact,
  type RecordRow,
  toClaimResult,
  toIdempotencyRecord,
  toPostgresText,
} from "./postgres-statements.js";

/** Settings of `createPostgresStore`. Pass either `pool` or `connectionString`. */
export interface PostgresStoreOptions {
  /**
   * A `pg` pool the application owns. The store never ends it, and leaves its
   * settings and its `error` listener to the application: add one, or an idle
   * connection that the server drops crashes the process.
   */
  readonly pool?: Pool;
  /**
   * A connection string such as `postgres://app@db/app`. The store creates
   * and ends its own pool, with the settings below.
   */
  readonly connectionString?: string;
  /** The schema of the table, created if missing. Default `public`. */
  readonly schema?: string;
  /** The table of the records, created or migrated on start. Default `connect_idempotency_records`. */
  readonly table?: string;
  /** Connections in the store's own pool. Default 10. */
  readonly maxConnections?: number;
  /**
   * Whether the store names its statements, so that each connection parses
   * and plans them once and then only binds values. Turn it off behind a
   * pooler that hands one client's statements to several server connections
   * and does not track prepared statements, such as PgBouncer in transaction
   * or statement mode before 1.21 (or later with `max_prepared_statements`
   * 0): a statement prepared on one server connection is unknown on the
   * next. Default true.
   */
  readonly preparedStatements?: boolean;
  /**
   * The `application_name` of the store's own connections, to find them in
   * `pg_stat_activity`. Default: the connection string's `application_name`,
   * else `PGAPPNAME`, else `connect-idempotency`.
   */
  readonly applicationName?: string;
  /** The server-side `statement_timeout` of the store's own connections; 0 sets none. Default 5,000 ms. */
  readonly statementTimeoutMs?: number;
  /** How long to wait for a connection of the store's own pool. Default 5,000 ms. */
  readonly connectionTimeoutMs?: number;
  /** Time between sweeps of expired records; 0 turns the sweeper off. Default 60,000 ms. */
  readonly sweepIntervalMs?: number;
  /** Records deleted per sweep statement. Default 1,000. */
  readonly sweepBatchSize?: number;
  /**
   * Called after every background sweep, with what it deleted or why it
   * failed. Without it, a failed sweep is reported with `process.emitWarning`.
   */
  readonly onSweep?: (report: SweepReport) => void;
}

/**
 * The PostgreSQL store: an `IdempotencyStore` whose atomic effects hand the
 * application a client inside the completing transaction
 * (`AtomicIdempotencyStore`), plus what code in the same folder (the admin
 * CLI) needs to work on the same table.
 */
export interface PostgresStore extends AtomicIdempotencyStore<PoolClient, "async"> {
  /** The pool every operation runs on: the one passed in, or the store's own. */
  readonly pool: Pool;
  /** The schema of the table, unquoted. */
  readonly schema: string;
  /** The records table, unquoted. */
  readonly table: string;
  /** The SQL of every operation, to run inside another transaction on `pool`. */
  readonly statements: PostgresStatements;
}

// A claim loops only when the record that blocked it is deleted before it
// could be read; more than a few rounds means something deletes in a loop.
const maxClaimAttempts = 10;

/**
 * Creates an `IdempotencyStore` on PostgreSQL, for several server processes
 * or machines sharing one database. It creates or migrates its table first,
 * so the promise rejects when the database cannot be reached.
 *
 * A claim is one `INSERT ... ON CONFLICT DO UPDATE ... WHERE` against the
 * primary key: insert, replace an expired record, take over an interrupted or
 * dead claim, or leave the record that holds the key, atomically. Every
 * change of a claimed record checks the owner token and attempt. Claims,
 * completions and renewals made in one turn of the event loop go to the
 * database as one statement per kind, each caller answered from its own row
 * (`createPostgresStatementBatcher`): one round trip and one commit for many
 * concurrent requests. Leases, expiry and sweeping are timed by the
 * database server's clock, so
 * application servers whose clocks disagree still agree on who holds a key. A
 * record read for a decision is checked against the checksum its claim or
 * completion wrote, and a damaged one rejects with a `StoreCorruptError`. A
 * lost connection rejects the operation; the pool opens new connections when
 * the database is back, and a completion retried after its answer was lost
 * reports success.
 *
 * `pg` is an optional dependency, loaded here only when the store creates its
 * own pool, so that the package works without it when PostgreSQL is not used.
 */
export async function createPostgresStore(options: PostgresStoreOptions): Promise<PostgresStore> {
  if (options.pool !== undefined && options.connectionString !== undefined) {
    throw new Error("createPostgresStore: pass a pool or a connectionString, not both");
  }
  const schema = options.schema ?? defaultPostgresSchema;
  const table = options.table ?? defaultPostgresTable;
  const records = `${quoteIdentifier(schema)}.${quoteIdentifier(table)}`;
  const prepared = options.preparedStatements ?? true;
  const statements = createPostgresStatements(records, { prepared });
  const ownPool = options.pool === undefined;
  const pool = options.pool ?? (await createPool(options));
  let closed = false;
  const open = (): Pool => {
    if (closed) {
      throw new Error("createPostgresStore: the PostgreSQL store is closed");
    }
    return pool;
  };
  let sweeper: RecordSweeper;
  let closing: Promise<void> | undefined;
  // A record read for a decision: damage throws rather than answer or look absent.
  const read = async (key: RecordKey): Promise<IdempotencyRecord | undefined> => {
    let row: RecordRow | undefined;
    try {
      row = (await open().query<RecordRow>(statements.get(key))).rows[0];
    } catch (error) {
      // data_corrupted, index_corrupted: PostgreSQL's own report of damage.
      const code = (error as { code?: unknown }).code;
      if (code === "XX001" || code === "XX002") {
        throw createStoreCorruptError(key, "PostgreSQL reports damaged data", error);
      }
      throw error;
    }
    if (row === undefined) {
      return undefined;
    }
    if (!postgresRowIntact(row)) {
      throw createStoreCorruptError(key, "its checksum does not match what it holds");
    }
    return toIdempotencyRecord(row);
  };
  const claims = createPostgresStatementBatcher({
    rowOf: (input: ClaimInput) => storedRow(input.key),
    async run(inputs) {
      const rows = (await open().query<ClaimRow>(statements.claimBatch(inputs))).rows;
      const claimed = new Map(rows.map((row) => [rowId(row), row]));
      return inputs.map((input) => claimed.get(storedRow(input.key)));
    },
  });
  const completions = createPostgresStatementBatcher({
    rowOf: (input: CompleteInput) => storedRow(input.key),
    async run(inputs) {
      const rows = (await open().query<{ completed: boolean }>(statements.completeBatch(inputs))).rows;
      if (rows.length !== inputs.length) {
        throw new Error(
          `createPostgresStore: a batched completion answered ${rows.length} rows for ${inputs.length} keys`,
        );
      }
      return rows.map((row) => row.completed);
    },
  });
  const renewals = createPostgresStatementBatcher({
    rowOf: (input: RenewInput) => storedRow(input.key),
    async run(inputs) {
      const rows = (await open().query<{ ord: string }>(statements.renewBatch(inputs))).rows;
      const renewed = new Set(rows.map((row) => Number(row.ord)));
      return inputs.map((_, index) => renewed.has(index + 1));
    },
  });
  try {
    await migratePostgresSchema(pool, schema, table);
    sweeper = createRecordSweeper({
      deleteBatch: async (limit) => (await open().query(statements.sweep({ limit }))).rowCount ?? 0,
      tombstoneBatch: async (limit) => (await open().query(statements.tombstone({ limit }))).rowCount ?? 0,
      intervalMs: options.sweepIntervalMs ?? defaultPostgresSweepIntervalMs,
      batchSize: options.sweepBatchSize ?? defaultPostgresSweepBatchSize,
      onSweep: options.onSweep,
    });
  } catch (error) {
    if (ownPool) {
      await pool.end();
    }
    throw error;
  }
  return {
    pool,
    schema,
    table,
    statements,
    async claim(input) {
      for (let attempt = 0; attempt < maxClaimAttempts; attempt++) {
        // A closed store rejects at once, not when the batch is sent.
        open();
        const claimedRow = await claims.submit(input);
        if (claimedRow !== undefined) {
          return toClaimResult(claimedRow);
        }
        const existingRecord = await read(input.key);
        if (existingRecord !== undefined) {
          return { kind: "existing", record: existingRecord };
        }
        // Released or swept between the two statements: claim again.
      }
      throw new Error(
        `createPostgresStore: could not claim a key in ${maxClaimAttempts} attempts: its record keeps being deleted`,
      );
    },
    async complete(input) {
      open();
      return completions.submit(input);
    },
    async interrupt(input) {
      return (await open().query(statements.interrupt(input))).rowCount === 1;
    },
    async release(input) {
      return (await open().query(statements.release(input))).rowCount === 1;
    },
    async renew(input) {
      open();
      return renewals.submit(input);
    },
    get: read,
    sweep: (input) => sweeper.sweep(input),
    ...createPostgresAtomicOperations({
      pool: open,
      records,
      phases: `${quoteIdentifier(schema)}.${quoteIdentifier(postgresPhasesTable(table))}`,
      statements,
      prepared,
    }),
    close() {
      // Operations called from now on reject; a running sweep pass ends
      // after its current batch, and the pool once that batch returned.
      closed = true;
      closing ??= sweeper.stop().then(() => (ownPool ? pool.end() : undefined));
      return closing;
    },
  };
}

/**
 * Names a row by its stored scope, method and key: text through
 * `toPostgresText`, which leaves no U+0000 to collide with the separator.
 */
function rowId(stored: RecordKey): string {
  return `${stored.scope}\u0000${stored.method}\u0000${stored.key}`;
}

/** The row a key is stored in, as `rowId` names it. */
function storedRow(key: RecordKey): string {
  return rowId({ scope: toPostgresText(key.scope), method: toPostgresText(key.method), key: toPostgresText(key.key) });
}

async function createPool(options: PostgresStoreOptions): Promise<Pool> {
  if (options.connectionString === undefined) {
    throw new Error("createPostgresStore: pass a pool or a connectionString");
  }
  let pg: typeof import("pg");
  try {
    pg = await import("pg");
  } catch (cause) {
    throw new Error("createPostgresStore: needs the optional dependency pg (npm install pg)", {
      cause,
    });
  }
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.maxConnections ?? defaultPostgresMaxConnections,
    application_name: options.applicationName,
    fallback_application_name: "connect-idempotency",
    statement_timeout: options.statementTimeoutMs ?? defaultPostgresStatementTimeoutMs,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? defaultPostgresConnectionTimeoutMs,
    // Notices a peer that vanished without closing the connection.
    keepAlive: true,
  });
  // An idle connection that the server ends (restart, pg_terminate_backend)
  // is dropped from the pool; without a listener it would crash the process.
  // Operations in flight reject on their own, and later ones get a new connection.
  pool.on("error", () => {});
  return pool;
}
