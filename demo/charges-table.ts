import type { HandlerContext } from "@connectrpc/connect";
import type { Database } from "better-sqlite3";
import type { ChargeResponse } from "../gen/demo/v1/bank_pb.js";
import { atomicEffects } from "../src/server/atomic-effects.js";
import type { SqliteStore } from "../src/store/sqlite/sqlite-store.js";

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
 * The bank's `charges` table, in the database of its idempotency store:
 * SQLite (`createSqliteChargesTable`) or PostgreSQL (`createPostgresChargesTable`).
 * Every row is money taken from a customer.
 */
export interface ChargesTable {
  /** Writes `charge` in the call's atomic commit: the row and the stored answer commit together. */
  commitNew(ctx: HandlerContext, charge: ChargeRow, answer: () => ChargeResponse): Promise<ChargeResponse>;
}

/** Creates the `charges` table of the fake bank if it is missing. */
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

/** The `charges` table in the SQLite file of `store`, the bank's idempotency store. */
export function createSqliteChargesTable(store: SqliteStore): ChargesTable {
  createChargesTable(store.database);
  const insert = store.database.prepare<[string, string, string, number, string, string, number]>(
    "INSERT INTO charges (charge_id, request_id, account_id, amount_minor, currency, reference, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
  );
  return {
    commitNew: (ctx, c, answer) =>
      atomicEffects(ctx, store).commit(() => {
        insert.run(c.charge_id, c.request_id, c.account_id, c.amount_minor, c.currency, c.reference, c.created_at);
        return answer();
      }),
  };
}
