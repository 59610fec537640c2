import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Database } from "better-sqlite3";
import { BankService, ChargeResponseSchema } from "../gen/demo/v1/bank_pb.js";
import { atomicEffects } from "../src/server/atomic-effects.js";
import { idempotencyContext } from "../src/server/idempotency-context.js";
import type { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { validateMoney } from "./validate-money.js";

/** One row of the bank's `charges` table. */
export interface ChargeRow {
  readonly charge_id: string;
  readonly request_id: string;
  readonly account_id: string;
  readonly amount_minor: number;
  readonly currency: string;
  /** The caller's reference: for the demo's payments, the payment's request ID. */
  readonly reference: string;
  readonly created_at: number;
}

/**
 * Creates the `charges` table of the fake bank if it is missing. The demo's
 * report counts its rows: every row is money taken from a customer.
 */
function createChargesTable(db: Database): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS charges (
      charge_id TEXT PRIMARY KEY,
      request_id TEXT NOT NULL,
      account_id TEXT NOT NULL,
      amount_minor INTEGER NOT NULL,
      currency TEXT NOT NULL,
      reference TEXT NOT NULL DEFAULT '',
      created_at INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS charges_request_id ON charges (request_id)`);
}

/**
 * The fake bank: `demo.v1.BankService/Charge` writes one row per call, in
 * the SQLite file of the bank's own idempotency store. It is as naive as most
 * downstream systems: it has no deduplication of its own. The interceptor in
 * front of it, keyed by the request ID, makes a retried charge safe, and
 * `commit` writes the charge row in the same transaction as the stored
 * answer, so a crash leaves both or neither, never a charge whose retry
 * charges again.
 */
export function createBankServiceImpl(ledger: SqliteStore): ServiceImpl<typeof BankService> {
  createChargesTable(ledger.database);
  const insert = ledger.database.prepare<[string, string, string, bigint, string, string, number]>(
    "INSERT INTO charges (charge_id, request_id, account_id, amount_minor, currency, reference, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
  );
  return {
    async charge(req, ctx) {
      validateMoney(req);
      const requestId = ctx.values.get(idempotencyContext)?.key ?? req.requestId;
      return atomicEffects(ctx, ledger).commit(() => {
        const chargeId = `ch_${randomBytes(8).toString("hex")}`;
        insert.run(chargeId, requestId, req.accountId, req.amountMinor, req.currency, req.reference, Date.now());
        return create(ChargeResponseSchema, { chargeId });
      });
    },
  };
}
