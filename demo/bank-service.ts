import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { type BankService, ChargeResponseSchema } from "../gen/demo/v1/bank_pb.js";
import { idempotencyContext } from "../src/server/idempotency-context.js";
import type { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { type ChargesTable, createSqliteChargesTable } from "./charges-table.js";
import { validateMoney } from "./validate-money.js";

/**
 * The fake bank: `demo.v1.BankService/Charge` writes one row per call, in
 * the database of the bank's own idempotency store (a `SqliteStore` stands
 * for its SQLite table, `createSqliteChargesTable`). It is as naive as most
 * downstream systems: it has no deduplication of its own. The interceptor in
 * front of it, keyed by the request ID, makes a retried charge safe, and
 * `commit` writes the charge row in the same transaction as the stored
 * answer, so a crash leaves both or neither, never a charge whose retry
 * charges again.
 */
export function createBankServiceImpl(ledger: SqliteStore | ChargesTable): ServiceImpl<typeof BankService> {
  const charges = "commitNew" in ledger ? ledger : createSqliteChargesTable(ledger);
  return {
    async charge(req, ctx) {
      validateMoney(req);
      const chargeId = `ch_${randomBytes(8).toString("hex")}`;
      return charges.commitNew(
        ctx,
        {
          charge_id: chargeId,
          request_id: ctx.values.get(idempotencyContext)?.key ?? req.requestId,
          account_id: req.accountId,
          amount_minor: Number(req.amountMinor),
          currency: req.currency,
          reference: req.reference,
          created_at: Date.now(),
        },
        () => create(ChargeResponseSchema, { chargeId }),
      );
    },
  };
}
