import type { HandlerContext } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Database } from "better-sqlite3";
import type { CreatePaymentResponse } from "../gen/demo/v1/payments_pb.js";
import { type AtomicEffects, atomicEffects } from "../src/server/atomic-effects.js";
import type { TransactionMode } from "../src/store/atomic-idempotency-store.js";
import type { SqliteStore } from "../src/store/sqlite/sqlite-store.js";

/** One row of the `payments` table. */
export interface PaymentRow {
  readonly payment_id: string;
  readonly request_id: string;
  readonly account_id: string;
  readonly amount_minor: number;
  readonly currency: string;
  readonly charge_id: string;
  /** The request's metadata map as JSON. */
  readonly metadata: string;
  readonly refunded_minor: number;
  readonly created_at: number;
}

/** A payment to record: its row without the refunds. */
export type NewPaymentRow = Omit<PaymentRow, "refunded_minor">;

/**
 * The payment service's `payments` table, in the database of its
 * idempotency store: SQLite (`createSqlitePaymentsTable`) or PostgreSQL
 * (`createPostgresPaymentsTable`).
 */
export interface PaymentsTable {
  /** The call's steps and derived keys, on the store of the payment service's interceptor. */
  effects(ctx: HandlerContext): Pick<AtomicEffects<unknown, TransactionMode>, "phase" | "derivedKey">;
  /**
   * Records `payment` in the call's atomic commit (the row and the stored
   * response commit together) and answers with what `answer` makes of the
   * row as stored.
   */
  commitNew(
    ctx: HandlerContext,
    payment: NewPaymentRow,
    answer: (row: PaymentRow) => CreatePaymentResponse,
  ): Promise<CreatePaymentResponse>;
  /** Adds a refund in one transaction; FAILED_PRECONDITION beyond what is left, NOT_FOUND for no such payment. */
  refund(paymentId: string, amountMinor: bigint): Promise<PaymentRow>;
  /** The payment, or NOT_FOUND. */
  get(paymentId: string): Promise<PaymentRow>;
  /** The payments of an account, oldest first. */
  ofAccount(accountId: string): Promise<PaymentRow[]>;
}

/**
 * Creates the `payments` table if it is missing. `request_id` is indexed but
 * not unique on purpose: the handler is as naive as most handlers are, and
 * the demo counts what the interceptor saves it from.
 */
export function createPaymentsTable(db: Database): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS payments (
      payment_id TEXT PRIMARY KEY,
      request_id TEXT NOT NULL,
      account_id TEXT NOT NULL,
      amount_minor INTEGER NOT NULL,
      currency TEXT NOT NULL,
      charge_id TEXT NOT NULL,
      metadata TEXT NOT NULL,
      refunded_minor INTEGER NOT NULL DEFAULT 0,
      created_at INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS payments_request_id ON payments (request_id);
    CREATE INDEX IF NOT EXISTS payments_account_id ON payments (account_id, created_at)`);
}

/** NOT_FOUND for a payment that is not in the table. */
export function paymentNotFound(paymentId: string): ConnectError {
  return new ConnectError(`payment ${paymentId} not found`, Code.NotFound);
}

/** FAILED_PRECONDITION for a refund beyond what is left of `row`. */
export function refundTooLarge(row: PaymentRow, amountMinor: bigint): ConnectError {
  return new ConnectError(
    `refund of ${amountMinor} exceeds what is left of payment ${row.payment_id} (${row.amount_minor - row.refunded_minor})`,
    Code.FailedPrecondition,
  );
}

/** The `payments` table in the SQLite file of `store`, the payment service's idempotency store. */
export function createSqlitePaymentsTable(store: SqliteStore): PaymentsTable {
  const db = store.database;
  createPaymentsTable(db);
  const insert = db.prepare<[string, string, string, number, string, string, string, number]>(
    `INSERT INTO payments (payment_id, request_id, account_id, amount_minor, currency, charge_id, metadata, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const byId = db.prepare<[string], PaymentRow>("SELECT * FROM payments WHERE payment_id = ?");
  const byAccount = db.prepare<[string], PaymentRow>(
    "SELECT * FROM payments WHERE account_id = ? ORDER BY created_at, payment_id",
  );
  const addRefund = db.prepare<[bigint, string]>(
    "UPDATE payments SET refunded_minor = refunded_minor + ? WHERE payment_id = ?",
  );
  const find = (paymentId: string): PaymentRow => {
    const row = byId.get(paymentId);
    if (row === undefined) {
      throw paymentNotFound(paymentId);
    }
    return row;
  };
  return {
    effects: (ctx) => atomicEffects(ctx, store),
    commitNew: (ctx, p, answer) =>
      // `insert` and `find` run on `store.database`, the connection of the commit's transaction.
      atomicEffects(ctx, store).commit(() => {
        insert.run(
          p.payment_id,
          p.request_id,
          p.account_id,
          p.amount_minor,
          p.currency,
          p.charge_id,
          p.metadata,
          p.created_at,
        );
        return answer(find(p.payment_id));
      }),
    // The executor runs the job in its transaction: check and update are one step.
    refund: (paymentId, amountMinor) =>
      store.executor.run(() => {
        const row = find(paymentId);
        if (BigInt(row.refunded_minor) + amountMinor > BigInt(row.amount_minor)) {
          throw refundTooLarge(row, amountMinor);
        }
        addRefund.run(amountMinor, paymentId);
        return find(paymentId);
      }),
    get: async (paymentId) => find(paymentId),
    ofAccount: async (accountId) => byAccount.all(accountId),
  };
}
