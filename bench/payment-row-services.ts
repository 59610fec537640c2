import type { MethodImpl } from "@connectrpc/connect";
import Database from "better-sqlite3";
import pg from "pg";
import type { CreatePaymentRequest, PaymentService } from "../gen/demo/v1/payments_pb.js";
import { createPaymentsTable } from "../demo/payment-service.js";
import { postgresPaymentsTableSql } from "../demo/postgres-tables.js";
import { atomicEffects } from "../src/server/atomic-effects.js";
import { createIdempotencyInterceptor } from "../src/server/idempotency-interceptor.js";
import type { IdempotencyInterceptorOptions } from "../src/server/interceptor-options.js";
import { quoteIdentifier } from "../src/store/postgres/postgres-identifier.js";
import type { PostgresStore } from "../src/store/postgres/postgres-store.js";
import type { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import type { BenchService } from "./bench-service.js";
import { type BenchStoreOptions, required } from "./bench-stores.js";
import { createPayment } from "./payment-handler.js";

// The example CreatePayment (demo/payment-service.ts) inserts one row into
// its `payments` table; these services do the same, without the bank call,
// so that what differs between a pair is the idempotency around the write.

/** The `INSERT` of a payment row into SQLite's `payments`, with the values of `rowValues`. */
export const insertSqlite = `INSERT INTO payments (payment_id, request_id, account_id, amount_minor, currency, charge_id, metadata, created_at)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?)`;

/** The values of `insertSqlite` and `insertPostgres` for one request. */
export function rowValues(req: CreatePaymentRequest): [string, string, string, bigint, string, string, string, number] {
  // No bank in the bench: the charge ID is empty.
  return [
    `pay_${req.requestId}`,
    req.requestId,
    req.accountId,
    req.amountMinor,
    req.currency,
    "",
    JSON.stringify(req.metadata),
    Date.now(),
  ];
}

type CreatePaymentImpl = MethodImpl<typeof PaymentService.method.createPayment>;

/**
 * `baseline-db`, `baseline-db-full`, `baseline-postgres`: no interceptor; the
 * handler inserts the payment row in a transaction of its own (one
 * autocommitted INSERT), on a connection of its own with the durability the
 * scenario names, and answers.
 */
export async function createRowBaselineService(options: BenchStoreOptions): Promise<BenchService> {
  if (options.kind === "postgres") {
    const pool = new pg.Pool({
      connectionString: required(options.postgresUrl, "postgresUrl"),
      max: 10,
      ...(options.postgresApplicationName === undefined ? {} : { application_name: options.postgresApplicationName }),
    });
    pool.on("error", () => {});
    const schema = quoteIdentifier(required(options.postgresSchema, "postgresSchema"));
    await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await createPostgresPaymentsTable(pool, schema);
    const insert = insertPostgres(schema);
    const createPaymentRow: CreatePaymentImpl = async (req) => {
      await pool.query(insert, rowValues(req));
      return createPayment(req);
    };
    return { createPayment: createPaymentRow, interceptors: [], close: () => pool.end() };
  }
  const db = new Database(required(options.sqlitePath, "sqlitePath"));
  // As the SQLite store opens its file, with the synchronous level the
  // durability names: FULL syncs the WAL at every commit.
  db.pragma("journal_mode = WAL");
  db.pragma(`synchronous = ${options.kind === "sqlite-full" ? "FULL" : "NORMAL"}`);
  createPaymentsTable(db);
  const insert = db.prepare<[string, string, string, bigint, string, string, string, number]>(insertSqlite);
  const createPaymentRow: CreatePaymentImpl = (req) => {
    insert.run(...rowValues(req));
    return createPayment(req);
  };
  return {
    createPayment: createPaymentRow,
    interceptors: [],
    close: async () => {
      db.close();
    },
  };
}

/**
 * `sqlite-commit`, `sqlite-commit-full`, `postgres-commit`: the interceptor
 * on the store, and the handler's row and the completion of its request ID
 * in one `commit` of `atomicEffects`, as the example CreatePayment does.
 */
export async function createRowCommitService(
  store: SqliteStore | PostgresStore,
  interceptorOptions: Omit<IdempotencyInterceptorOptions, "store">,
): Promise<BenchService> {
  const interceptors = [createIdempotencyInterceptor({ store, ...interceptorOptions })];
  if ("database" in store) {
    createPaymentsTable(store.database);
    // Prepared on the store's connection, the one `commit` hands the handler.
    const insert =
      store.database.prepare<[string, string, string, bigint, string, string, string, number]>(insertSqlite);
    const createPaymentRow: CreatePaymentImpl = (req, ctx) =>
      atomicEffects(ctx, store).commit(() => {
        insert.run(...rowValues(req));
        return createPayment(req);
      });
    return { createPayment: createPaymentRow, interceptors, close: () => store.close() };
  }
  const schema = quoteIdentifier(store.schema);
  await createPostgresPaymentsTable(store.pool, schema);
  const insert = insertPostgres(schema);
  const createPaymentRow: CreatePaymentImpl = (req, ctx) =>
    atomicEffects(ctx, store).commit(async (client) => {
      await client.query(insert, rowValues(req));
      return createPayment(req);
    });
  return { createPayment: createPaymentRow, interceptors, close: () => store.close() };
}

/** The demo's `payments` table in PostgreSQL types, in `schema` (quoted). */
export async function createPostgresPaymentsTable(pool: pg.Pool, schema: string): Promise<void> {
  await pool.query(postgresPaymentsTableSql(`${schema}.payments`));
  await pool.query(`CREATE INDEX IF NOT EXISTS payments_request_id ON ${schema}.payments (request_id)`);
  await pool.query(`CREATE INDEX IF NOT EXISTS payments_account_id ON ${schema}.payments (account_id, created_at)`);
}

/** The `INSERT` of a payment row into `schema` (quoted)'s `payments`, with the values of `rowValues`. */
export function insertPostgres(schema: string): string {
  return `INSERT INTO ${schema}.payments (payment_id, request_id, account_id, amount_minor, currency, charge_id, metadata, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`;
}
