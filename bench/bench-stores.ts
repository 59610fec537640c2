import { createPostgresStore, type PostgresStore } from "../src/store/postgres/postgres-store.js";
import { createSqliteStore, type SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import type { BenchStoreKind } from "./scenarios.js";

/** Where a scenario's store keeps its records. */
export interface BenchStoreOptions {
  readonly kind: BenchStoreKind;
  /** For SQLite: the database file. */
  readonly sqlitePath?: string;
  /** For SQLite: false turns group commit off. */
  readonly groupCommit?: false;
  /** For a store-alone SQLite scenario: `SqliteFloor`'s bare statements instead of the store. */
  readonly floor?: true;
  /** For PostgreSQL: the server, and a schema of this run that bench/main.ts drops afterwards. */
  readonly postgresUrl?: string;
  readonly postgresSchema?: string;
  /** For PostgreSQL: names the store's connections, so that the bench finds their backends. */
  readonly postgresApplicationName?: string;
}

/** Opens a store with the settings the scenario names, and nothing else changed from the defaults. */
export async function openBenchStore(options: BenchStoreOptions): Promise<SqliteStore | PostgresStore> {
  switch (options.kind) {
    case "sqlite-normal":
    case "sqlite-full":
      return createSqliteStore({
        path: required(options.sqlitePath, "sqlitePath"),
        durability: options.kind === "sqlite-full" ? "full" : "normal",
        ...(options.groupCommit === false ? { groupCommit: false } : {}),
      });
    case "postgres":
      return createPostgresStore({
        connectionString: required(options.postgresUrl, "postgresUrl"),
        schema: required(options.postgresSchema, "postgresSchema"),
        ...(options.postgresApplicationName === undefined ? {} : { applicationName: options.postgresApplicationName }),
      });
  }
}

/** `value`, or an error naming the bench store option `name` that is missing. */
export function required<T>(value: T | undefined, name: string): T {
  if (value === undefined) {
    throw new Error(`bench store option ${name} is missing`);
  }
  return value;
}
