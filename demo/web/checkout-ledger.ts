import Database from "better-sqlite3";
import { demoDatabaseFiles } from "../demo-stores.js";

/** One charge at the bank, with the payment it belongs to. */
export interface LedgerCharge {
  /** The bank's ID of the charge. */
  readonly chargeId: string;
  /** The account charged. */
  readonly accountId: string;
  /** The amount in minor units, as text (int64). */
  readonly amountMinor: string;
  /** The request ID of the CreatePayment that led to the charge; "" when none is recorded yet. */
  readonly paymentRequestId: string;
  /** When the bank charged, in epoch milliseconds. */
  readonly createdAt: number;
}

/** Read access to the demo's SQLite files, from `openCheckoutLedger`. */
export interface CheckoutLedger {
  /** The bank's charges, oldest first; only those of `accountId` when given. */
  charges(accountId?: string): LedgerCharge[];
  /** Closes both read connections. */
  close(): void;
}

/**
 * Opens the bank's and the payment service's SQLite files of a running demo
 * server read-only, to show the page and the tests what money was taken:
 * every row of `charges` is a charge, whatever the services answered.
 */
export function openCheckoutLedger(dataDir: string): CheckoutLedger {
  const files = demoDatabaseFiles(dataDir);
  const bank = new Database(files.bank, { readonly: true, fileMustExist: true });
  const payments = new Database(files.payments, { readonly: true, fileMustExist: true });
  const charges = bank.prepare<[], { charge_id: string; account_id: string; amount_minor: number; created_at: number }>(
    "SELECT charge_id, account_id, amount_minor, created_at FROM charges ORDER BY created_at, charge_id",
  );
  const paymentOf = payments.prepare<[string], { request_id: string }>(
    "SELECT request_id FROM payments WHERE charge_id = ?",
  );
  return {
    charges(accountId) {
      return charges
        .all()
        .filter((row) => accountId === undefined || row.account_id === accountId)
        .map((row) => ({
          chargeId: row.charge_id,
          accountId: row.account_id,
          amountMinor: String(row.amount_minor),
          paymentRequestId: paymentOf.get(row.charge_id)?.request_id ?? "",
          createdAt: row.created_at,
        }));
    },
    close() {
      bank.close();
      payments.close();
    },
  };
}
