import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { Database } from "better-sqlite3";
import { BankService, ChargeResponseSchema } from "../gen/demo/v1/bank_pb.js";
import { idempotencyContext } from "../src/server/idempotency-context.js";
import type { SqliteStore } from "../src/store/sqlite/sqlite-store.js";

/** One row of the bank's `charges` table. */
export interface ChargeRow {
  readonly charge_id: string;
  readonly request_id: string;
  readonly account_id: string;
  readonly amount_minor: number;
  readonly currency: string;
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
      created_at INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS charges_request_id ON charges (request_id)`);
}

/**
 * The fake bank: `demo.v1.BankService/Charge` writes one row per call, in
 * the SQLite file of the bank's own idempotency store (through its executor,
 * so that the write joins the store's group commit). It is deliberately
 * naive, like most downstream systems: a second call charges again, and the
 * idempotency interceptor in front of it, keyed by the request ID, is what
 * makes a retried charge safe. The one check of its own covers a takeover:
 * its write and its stored answer are two transactions, so an execution that
 * died in between may have charged already.
 */
export function createBankServiceImpl(
  ledger: Pick<SqliteStore, "database" | "executor">,
): ServiceImpl<typeof BankService> {
  createChargesTable(ledger.database);
  const byRequestId = ledger.database.prepare<[string], ChargeRow>(
    "SELECT * FROM charges WHERE request_id = ? ORDER BY created_at, charge_id LIMIT 1",
  );
  const insert = ledger.database.prepare<[string, string, string, bigint, string, number]>(
    "INSERT INTO charges (charge_id, request_id, account_id, amount_minor, currency, created_at) VALUES (?, ?, ?, ?, ?, ?)",
  );
  return {
    async charge(req, ctx) {
      if (req.accountId === "") {
        throw new ConnectError("account_id is required", Code.InvalidArgument);
      }
      if (req.amountMinor <= 0n) {
        throw new ConnectError("amount_minor must be positive", Code.InvalidArgument);
      }
      if (!/^[A-Z]{3}$/.test(req.currency)) {
        throw new ConnectError("currency must be an ISO 4217 code such as EUR", Code.InvalidArgument);
      }
      const idempotency = ctx.values.get(idempotencyContext);
      if (idempotency?.takeover) {
        // An execution of this request died between charging and storing
        // its answer: the charge it made is the answer.
        const charged = byRequestId.get(idempotency.key);
        if (charged !== undefined) {
          return create(ChargeResponseSchema, { chargeId: charged.charge_id });
        }
      }
      const chargeId = `ch_${randomBytes(8).toString("hex")}`;
      await ledger.executor.run(() =>
        insert.run(chargeId, idempotency?.key ?? req.requestId, req.accountId, req.amountMinor, req.currency, Date.now()),
      );
      return create(ChargeResponseSchema, { chargeId });
    },
  };
}
