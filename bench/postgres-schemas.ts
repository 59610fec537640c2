import pg from "pg";
import { quoteIdentifier } from "../src/store/postgres/postgres-identifier.js";

/** Where the PostgreSQL scenarios connect; `BENCH_POSTGRES_URL` overrides it. */
export const benchPostgresUrl = process.env.BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** Drops the schemas a run created, with their tables: the database is shared with tests and other runs. */
export async function dropPostgresSchemas(connectionString: string, schemas: readonly string[]): Promise<void> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    for (const schema of schemas) {
      await client.query(`DROP SCHEMA IF EXISTS ${quoteIdentifier(schema)} CASCADE`);
    }
  } finally {
    await client.end();
  }
}
