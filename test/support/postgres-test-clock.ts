import pg from "pg";
import { afterAll, beforeAll } from "vitest";
import { createTestSchema, type TestSchema, testConnectionString } from "./postgres-database.js";

/** The database's clock as the connections of `pool()` see it, from `useTestDatabaseClock`. */
export interface TestDatabaseClock {
  /**
   * A pool whose connections see the moved clock. Hand it to a store
   * (`createPostgresStore({ pool })`) and end it after the store closed.
   */
  pool(): pg.Pool;
  /** Moves the clock of those connections forward by `ms`. */
  travel(ms: number): Promise<void>;
  /** Puts the clock back to the database's own time. */
  reset(): Promise<void>;
}

/**
 * Lets a test move the PostgreSQL server's clock forward, as the store's
 * connections see it, without the store knowing: a schema of its own holds
 * `clock_timestamp()` (the database's time plus an offset the test sets),
 * and the connections of `pool()` search that schema before `pg_catalog`.
 * The store's SQL still asks the database for the time; only the database's
 * answer moves, as it would when time passes. Rows are never touched.
 * Call it at the top of a file.
 */
export function useTestDatabaseClock(prefix: string): TestDatabaseClock {
  let schema: TestSchema | undefined;
  beforeAll(async () => {
    schema = await createTestSchema(prefix, { create: true });
    await schema.admin.query(`CREATE TABLE ${schema.name}.clock_offset (ms bigint NOT NULL)`);
    await schema.admin.query(`INSERT INTO ${schema.name}.clock_offset VALUES (0)`);
    await schema.admin.query(`CREATE FUNCTION ${schema.name}.clock_timestamp() RETURNS timestamptz
LANGUAGE sql VOLATILE
AS $$ SELECT pg_catalog.clock_timestamp() + (SELECT ms FROM ${schema.name}.clock_offset) * interval '1 millisecond' $$`);
  });
  afterAll(async () => {
    await schema?.drop();
  });
  const created = (): TestSchema => {
    if (schema === undefined) {
      throw new Error(`the ${prefix} test clock is used before its beforeAll hook ran`);
    }
    return schema;
  };
  return {
    pool() {
      const pool = new pg.Pool({
        connectionString: testConnectionString,
        max: 10,
        // pg_catalog named after the clock's schema is searched after it.
        options: `-c search_path=${created().name},pg_catalog`,
      });
      pool.on("error", () => {});
      return pool;
    },
    async travel(ms) {
      await created().admin.query(`UPDATE ${created().name}.clock_offset SET ms = ms + $1`, [ms]);
    },
    async reset() {
      await created().admin.query(`UPDATE ${created().name}.clock_offset SET ms = 0`);
    },
  };
}
