import { EventEmitter, on } from "node:events";
import { create } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { type BankService, ChargeResponseSchema } from "../gen/demo/v1/bank_pb.js";
import {
  CreatePaymentResponseSchema,
  type Payment,
  PaymentSchema,
  type PaymentService,
} from "../gen/demo/v1/payments_pb.js";
import { idempotencyContext } from "../src/server/idempotency-context.js";
import type { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { type PaymentRow, type PaymentsTable, createSqlitePaymentsTable } from "./payments-table.js";
import { validateMoney } from "./validate-money.js";

// Where they were before the table had its own file; the benchmarks import them from here.
export { createPaymentsTable } from "./payments-table.js";

/** What the payment service needs. */
export interface PaymentServiceDeps {
  /**
   * The `payments` table, in the database of the payment service's
   * idempotency store, whose transactions commit a payment together with
   * its request ID. A `SqliteStore` stands for its SQLite table
   * (`createSqlitePaymentsTable`).
   */
  readonly ledger: SqliteStore | PaymentsTable;
  /** A Connect client of the bank the service charges. */
  readonly bank: Client<typeof BankService>;
}

/**
 * The example `demo.v1.PaymentService`. CreatePayment charges the bank and
 * records the payment; it has no deduplication of its own, which is the
 * interceptor's job.
 */
export function createPaymentServiceImpl(deps: PaymentServiceDeps): ServiceImpl<typeof PaymentService> {
  const { bank } = deps;
  const table = "commitNew" in deps.ledger ? deps.ledger : createSqlitePaymentsTable(deps.ledger);
  // New payments for WatchPayments subscribers.
  const created = new EventEmitter<{ payment: [Payment] }>();
  created.setMaxListeners(0);

  return {
    async createPayment(req, ctx) {
      validateMoney(req);
      const effects = table.effects(ctx);
      const requestId = ctx.values.get(idempotencyContext)?.key ?? req.requestId;
      // A recorded phase: a retry that resumes after a crash gets the charge
      // without asking the bank again. The bank is asked under a key derived
      // from the payment's own, so that a crash between its answer and the
      // recording, or an answer lost on the way (an indefinite error: the
      // retry takes the call over), asks for the same charge. No signal from
      // the call: once the bank is asked, the charge must be recorded even if
      // our caller hung up.
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
      // a crash leaves both or neither, never a payment whose retry pays again.
      const response = await table.commitNew(
        ctx,
        {
          // Derived from the request ID: a retry after a crash gets the same one.
          payment_id: `pay_${effects.derivedKey("payment").replaceAll("-", "").slice(0, 16)}`,
          request_id: requestId,
          account_id: req.accountId,
          amount_minor: Number(req.amountMinor),
          currency: req.currency,
          charge_id: charge.chargeId,
          metadata: JSON.stringify(req.metadata),
          created_at: Date.now(),
        },
        (row) => create(CreatePaymentResponseSchema, { payment: toPayment(row) }),
      );
      if (response.payment !== undefined) {
        created.emit("payment", response.payment);
      }
      return response;
    },

    async refundPayment(req) {
      if (req.amountMinor <= 0n) {
        throw new ConnectError("amount_minor must be positive", Code.InvalidArgument);
      }
      return { payment: toPayment(await table.refund(req.paymentId, req.amountMinor)) };
    },

    async getPayment(req) {
      return { payment: toPayment(await table.get(req.paymentId)) };
    },

    async *watchPayments(req, ctx) {
      if (req.accountId === "") {
        throw new ConnectError("account_id is required", Code.InvalidArgument);
      }
      // Subscribed before the backlog is read: no payment can fall in
      // between. One that is in both comes once (PostgreSQL reads the backlog
      // after an await).
      const live = on(created, "payment", { signal: ctx.signal });
      const sent = new Set<string>();
      for (const row of await table.ofAccount(req.accountId)) {
        sent.add(row.payment_id);
        yield { payment: toPayment(row) };
      }
      try {
        for await (const [payment] of live as AsyncIterableIterator<[Payment]>) {
          if (payment.accountId === req.accountId && !sent.has(payment.paymentId)) {
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
