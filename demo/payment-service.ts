import { EventEmitter, on } from "node:events";
import { create } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { Database } from "better-sqlite3";
import { type BankService, ChargeResponseSchema } from "../gen/demo/v1/bank_pb.js";
import {
  CreatePaymentResponseSchema,
  type Payment,
  PaymentSchema,
  PaymentService,
} from "../gen/demo/v1/payments_pb.js";
import { atomicEffects } from "../src/server/atomic-effects.js";
import { idempotencyContext } from "../src/server/idempotency-context.js";
import type { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { validateMoney } from "./validate-money.js";

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

/** What the payment service needs. */
export interface PaymentServiceDeps {
  /**
   * The SQLite file of the `payments` table: the payment service's
   * idempotency store, whose executor the writes go through and whose
   * transactions commit a payment together with its request ID.
   */
  readonly ledger: SqliteStore;
  /** A Connect client of the bank the service charges. */
  readonly bank: Client<typeof BankService>;
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

/**
 * The example `demo.v1.PaymentService`. CreatePayment charges the bank and
 * records the payment; it has no deduplication of its own, which is the
 * interceptor's job.
 */
export function createPaymentServiceImpl(deps: PaymentServiceDeps): ServiceImpl<typeof PaymentService> {
  const { ledger, bank } = deps;
  const db = ledger.database;
  createPaymentsTable(db);
  const insert = db.prepare<[string, string, string, bigint, string, string, string, number]>(
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
  // New payments for WatchPayments subscribers.
  const created = new EventEmitter<{ payment: [Payment] }>();
  created.setMaxListeners(0);

  const findPayment = (paymentId: string): PaymentRow => {
    const row = byId.get(paymentId);
    if (row === undefined) {
      throw new ConnectError(`payment ${paymentId} not found`, Code.NotFound);
    }
    return row;
  };

  return {
    async createPayment(req, ctx) {
      validateMoney(req);
      const effects = atomicEffects(ctx, ledger);
      // A recorded phase: a retry that resumes after a crash gets the charge
      // without asking the bank again. The bank is asked under a key derived
      // from the payment's own, so that a crash between its answer and the
      // recording asks for the same charge. No signal from the call: once the
      // bank is asked, the charge must be recorded even if our caller hung up.
      const requestId = ctx.values.get(idempotencyContext)?.key ?? req.requestId;
      const charge = await effects.phase("charge", ChargeResponseSchema, () =>
        bank.charge({
          requestId: effects.derivedKey("charge"),
          accountId: req.accountId,
          amountMinor: req.amountMinor,
          currency: req.currency,
          reference: requestId,
        }),
      );
      // The payment row and the stored response commit in one transaction:
      // a crash leaves both or neither, never a payment whose retry pays
      // again. `insert` and `findPayment` run on `ledger.database`, the
      // connection of that transaction.
      const response = await effects.commit(() => {
        // Derived from the request ID: a retry after a crash gets the same one.
        const paymentId = `pay_${effects.derivedKey("payment").replaceAll("-", "").slice(0, 16)}`;
        insert.run(
          paymentId,
          requestId,
          req.accountId,
          req.amountMinor,
          req.currency,
          charge.chargeId,
          JSON.stringify(req.metadata),
          Date.now(),
        );
        return create(CreatePaymentResponseSchema, { payment: toPayment(findPayment(paymentId)) });
      });
      if (response.payment !== undefined) {
        created.emit("payment", response.payment);
      }
      return response;
    },

    async refundPayment(req) {
      if (req.amountMinor <= 0n) {
        throw new ConnectError("amount_minor must be positive", Code.InvalidArgument);
      }
      // The executor runs the job in its transaction: check and update are one step.
      const refunded = await ledger.executor.run(() => {
        const row = findPayment(req.paymentId);
        if (BigInt(row.refunded_minor) + req.amountMinor > BigInt(row.amount_minor)) {
          throw new ConnectError(
            `refund of ${req.amountMinor} exceeds what is left of payment ${req.paymentId} (${row.amount_minor - row.refunded_minor})`,
            Code.FailedPrecondition,
          );
        }
        addRefund.run(req.amountMinor, req.paymentId);
        return findPayment(req.paymentId);
      });
      return { payment: toPayment(refunded) };
    },

    getPayment(req) {
      return { payment: toPayment(findPayment(req.paymentId)) };
    },

    async *watchPayments(req, ctx) {
      if (req.accountId === "") {
        throw new ConnectError("account_id is required", Code.InvalidArgument);
      }
      // Subscribing and reading the backlog in the same tick: no payment can
      // fall in between, and none comes twice.
      const live = on(created, "payment", { signal: ctx.signal });
      for (const row of byAccount.all(req.accountId)) {
        yield { payment: toPayment(row) };
      }
      try {
        for await (const [payment] of live as AsyncIterableIterator<[Payment]>) {
          if (payment.accountId === req.accountId) {
            yield { payment };
          }
        }
      } catch (err) {
        // The client hung up: the stream simply ends.
        if (!ctx.signal.aborted) {
          throw err;
        }
      }
    },
  };
}

function toPayment(row: PaymentRow): Payment {
  return create(PaymentSchema, {
    paymentId: row.payment_id,
    accountId: row.account_id,
    amountMinor: BigInt(row.amount_minor),
    currency: row.currency,
    chargeId: row.charge_id,
    metadata: JSON.parse(row.metadata) as Record<string, string>,
    refundedMinor: BigInt(row.refunded_minor),
  });
}
