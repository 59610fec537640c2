import type { PoolClient } from "pg";
import { atomicEffects } from "../src/server/atomic-effects.js";
import { quoteIdentifier } from "../src/store/postgres/postgres-identifier.js";
import type { PostgresStore } from "../src/store/postgres/postgres-store.js";
import type { ChargesTable } from "./charges-table.js";
import { type PaymentRow, type PaymentsTable, paymentNotFound, refundTooLarge } from "./payments-table.js";

// pg reads BIGINT as text; the demo's amounts and times fit a number.
const paymentColumns =
  "payment_id, request_id, account_id, amount_minor::float8 AS amount_minor, currency, charge_id, metadata, " +
  "refunded_minor::float8 AS refunded_minor, created_at::float8 AS created_at";

/**
 * The `CREATE TABLE IF NOT EXISTS` of the demo's `payments` table in
 * PostgreSQL types, as `qualified` (quoted) names it; its indexes are the
 * caller's.
 */
export function postgresPaymentsTableSql(qualified: string): string {
  return `CREATE TABLE IF NOT EXISTS ${qualified} (
      payment_id TEXT PRIMARY KEY,
      request_id TEXT NOT NULL,
      account_id TEXT NOT NULL,
      amount_minor BIGINT NOT NULL,
      currency TEXT NOT NULL,
      charge_id TEXT NOT NULL,
      metadata TEXT NOT NULL,
      refunded_minor BIGINT NOT NULL DEFAULT 0,
      created_at BIGINT NOT NULL
    )`;
}

/**
 * The `payments` table of the payment service on PostgreSQL, in the schema
 * of `store` (its idempotency store), created if missing. Same columns as
 * the SQLite table.
 */
export async function createPostgresPaymentsTable(store: PostgresStore): Promise<PaymentsTable> {
  const payments = `${quoteIdentifier(store.schema)}.payments`;
  await store.pool.query(`
    ${postgresPaymentsTableSql(payments)};
    CREATE INDEX IF NOT EXISTS payments_request_id ON ${payments} (request_id);
    CREATE INDEX IF NOT EXISTS payments_account_id ON ${payments} (account_id, created_at)`);
  const find = async (client: Pick<PoolClient, "query">, paymentId: string, lock = ""): Promise<PaymentRow> => {
    const row = (
      await client.query<PaymentRow>(`SELECT ${paymentColumns} FROM ${payments} WHERE payment_id = $1${lock}`, [
        paymentId,
      ])
    ).rows[0];
    if (row === undefined) {
      throw paymentNotFound(paymentId);
    }
    return row;
  };
  return {
    effects: (ctx) => atomicEffects(ctx, store),
    commitNew: (ctx, p, answer) =>
      atomicEffects(ctx, store).commit(async (client) => {
        await client.query(
          `INSERT INTO ${payments} (payment_id, request_id, account_id, amount_minor, currency, charge_id, metadata, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
          [p.payment_id, p.request_id, p.account_id, p.amount_minor, p.currency, p.charge_id, p.metadata, p.created_at],
        );
        return answer(await find(client, p.payment_id));
      }),
    // The row is locked from the check to the update: two refunds cannot both pass the check.
    refund: (paymentId, amountMinor) =>
      store.transact(async (client) => {
        const row = await find(client, paymentId, " FOR UPDATE");
        if (BigInt(row.refunded_minor) + amountMinor > BigInt(row.amount_minor)) {
          throw refundTooLarge(row, amountMinor);
        }
        await client.query(`UPDATE ${payments} SET refunded_minor = refunded_minor + $1 WHERE payment_id = $2`, [
          String(amountMinor),
          paymentId,
        ]);
        return find(client, paymentId);
      }),
    get: (paymentId) => find(store.pool, paymentId),
    ofAccount: async (accountId) =>
      (
        await store.pool.query<PaymentRow>(
          `SELECT ${paymentColumns} FROM ${payments} WHERE account_id = $1 ORDER BY created_at, payment_id`,
          [accountId],
        )
      ).rows,
  };
}

/** The bank's `charges` table on PostgreSQL, in the schema of `store` (the bank's idempotency store), created if missing. */
export async function createPostgresChargesTable(store: PostgresStore): Promise<ChargesTable> {
  const charges = `${quoteIdentifier(store.schema)}.charges`;
  await store.pool.query(`
    CREATE TABLE IF NOT EXISTS ${charges} (
      charge_id TEXT PRIMARY KEY,
      request_id TEXT NOT NULL,
      account_id TEXT NOT NULL,
      amount_minor BIGINT NOT NULL,
      currency TEXT NOT NULL,
      reference TEXT NOT NULL DEFAULT '',
      created_at BIGINT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS charges_request_id ON ${charges} (request_id)`);
  return {
    commitNew: (ctx, c, answer) =>
      atomicEffects(ctx, store).commit(async (client) => {
        await client.query(
          `INSERT INTO ${charges} (charge_id, request_id, account_id, amount_minor, currency, reference, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)`,
          [c.charge_id, c.request_id, c.account_id, c.amount_minor, c.currency, c.reference, c.created_at],
        );
        return answer();
      }),
  };
}
