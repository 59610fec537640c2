import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { IdempotencyStore } from "../src/store/idempotency-store.js";
import { type PostgresStore, createPostgresStore } from "../src/store/postgres/postgres-store.js";
import { createSqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { type ChargesTable, createSqliteChargesTable } from "./charges-table.js";
import { type PaymentsTable, createSqlitePaymentsTable } from "./payments-table.js";
import { createPostgresChargesTable, createPostgresPaymentsTable } from "./postgres-tables.js";

/** The SQLite files of the demo in its data folder. */
export interface DemoDatabaseFiles {
  /** The payment service: its idempotency records and the `payments` table. */
  readonly payments: string;
  /** The fake bank: its idempotency records and the `charges` table. */
  readonly bank: string;
}

/** Where the demo keeps its SQLite files. */
export function demoDatabaseFiles(dataDir: string): DemoDatabaseFiles {
  return { payments: join(dataDir, "payments.sqlite"), bank: join(dataDir, "bank.sqlite") };
}

/** Where the demo keeps its data on PostgreSQL. */
export interface DemoPostgres {
  /** The database, such as `postgres://postgres@127.0.0.1:5432/test`. */
  readonly url: string;
  /** The schema of the run's tables, created if missing. */
  readonly schema: string;
}

/** The idempotency tables of the two services on PostgreSQL, in the run's schema. */
export const demoPostgresTables = { payments: "payments_idempotency", bank: "bank_idempotency" } as const;

/** The stores and tables of both services, from `openDemoStores`. */
export interface DemoStores {
  /** The payment service's idempotency store, and its `payments` table in the same database. */
  readonly payments: { readonly store: IdempotencyStore; readonly table: PaymentsTable };
  /** The bank's idempotency store, and its `charges` table in the same database. */
  readonly bank: { readonly store: IdempotencyStore; readonly table: ChargesTable };
  /** Closes both stores. */
  close(): Promise<void>;
}

/**
 * Opens the stores of both services and creates their tables: two SQLite
 * files in `dataDir` (created when missing), or, with `postgres`, two
 * tables in its schema.
 */
export async function openDemoStores(dataDir: string, postgres: DemoPostgres | undefined): Promise<DemoStores> {
  if (postgres !== undefined) {
    const opened: PostgresStore[] = [];
    try {
      for (const table of [demoPostgresTables.payments, demoPostgresTables.bank]) {
        opened.push(
          await createPostgresStore({
            connectionString: postgres.url,
            schema: postgres.schema,
            table,
            maxConnections: 8,
          }),
        );
      }
      const [paymentsStore, bankStore] = opened as [PostgresStore, PostgresStore];
      return {
        payments: { store: paymentsStore, table: await createPostgresPaymentsTable(paymentsStore) },
        bank: { store: bankStore, table: await createPostgresChargesTable(bankStore) },
        close: async () => {
          await Promise.all(opened.map((store) => store.close()));
        },
      };
    } catch (err) {
      await Promise.all(opened.map((store) => store.close()));
      throw err;
    }
  }
  mkdirSync(dataDir, { recursive: true });
  const files = demoDatabaseFiles(dataDir);
  // The demo's lease is short (its crash must be recovered from quickly);
  // a lease has to outlast three busy waits, so the busy timeout is short too.
  const paymentsStore = createSqliteStore({ path: files.payments, busyTimeoutMs: 1_000 });
  try {
    const bankStore = createSqliteStore({ path: files.bank, busyTimeoutMs: 1_000 });
    return {
      payments: { store: paymentsStore, table: createSqlitePaymentsTable(paymentsStore) },
      bank: { store: bankStore, table: createSqliteChargesTable(bankStore) },
      close: async () => {
        await Promise.all([paymentsStore.close(), bankStore.close()]);
      },
    };
  } catch (err) {
    await paymentsStore.close();
    throw err;
  }
}
