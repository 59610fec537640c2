import type { Client } from "pg";

/**
 * Opens one connection to `url`, for the demo's own work on PostgreSQL
 * (the stall, reading the ledger, dropping the schema). `pg` is an optional
 * dependency, loaded here only when asked, so that `npm start` on SQLite
 * runs without it.
 */
export async function connectPostgres(url: string, applicationName = "connect-idempotency-demo"): Promise<Client> {
  const { default: pg } = await import("pg");
  const client = new pg.Client({ connectionString: url, application_name: applicationName });
  await client.connect();
  return client;
}
