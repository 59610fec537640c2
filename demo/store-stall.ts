import { setTimeout as sleep } from "node:timers/promises";
import Database from "better-sqlite3";
import { quoteIdentifier } from "../src/store/postgres/postgres-identifier.js";
import type { DemoPostgres } from "./demo-stores.js";
import { connectPostgres } from "./postgres-client.js";

/**
 * Stalls the SQLite store in the file at `path` for `ms` milliseconds: a
 * connection of its own takes the file's write lock (`BEGIN IMMEDIATE`) and
 * keeps it, as a long migration or a stuck batch job would. Every write of
 * every server process waits for its busy timeout and fails; reads go on
 * (WAL). Resolves once the lock is given back.
 */
export async function stallSqliteStore(path: string, ms: number): Promise<void> {
  const db = new Database(path, { fileMustExist: true, timeout: 5_000 });
  try {
    db.exec("BEGIN IMMEDIATE");
    try {
      await sleep(ms);
    } finally {
      db.exec("ROLLBACK");
    }
  } finally {
    db.close();
  }
}

/**
 * Stalls `tables` of the run's PostgreSQL schema (a store's records, and the
 * application's tables beside them) for `ms` milliseconds: a connection of
 * its own locks them (`LOCK TABLE ... IN ACCESS EXCLUSIVE MODE` in a
 * transaction) and keeps the lock. Every statement on them, reads too, waits
 * for it (or for the store's statement timeout). Resolves once the lock is
 * given back.
 */
export async function stallPostgresStore(postgres: DemoPostgres, tables: readonly string[], ms: number): Promise<void> {
  const client = await connectPostgres(postgres.url, "connect-idempotency-demo-stall");
  try {
    await client.query("BEGIN");
    try {
      const names = tables.map((table) => `${quoteIdentifier(postgres.schema)}.${quoteIdentifier(table)}`);
      await client.query(`LOCK TABLE ${names.join(", ")} IN ACCESS EXCLUSIVE MODE`);
      await sleep(ms);
    } finally {
      await client.query("ROLLBACK");
    }
  } finally {
    await client.end();
  }
}
