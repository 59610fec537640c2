import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll } from "vitest";
import {
  type PostgresStore,
  type PostgresStoreOptions,
  createPostgresStore,
} from "../../src/store/postgres/postgres-store.js";

/**
 * The test database: PostgreSQL on loopback with trust authentication.
 * Tests fail rather than skip when it is down. Override with
 * `TEST_DATABASE_URL`.
 */
export const testConnectionString = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** A schema of its own for one test file, dropped at the end. */
export interface TestSchema {
  /** The schema name: random, lowercase, safe to splice into SQL unquoted. */
  readonly name: string;
  /** A pool for the test's own queries (setup, assertions, killing backends). */
  readonly admin: pg.Pool;
  /** Drops the schema with everything in it, and ends `admin`. */
  drop(): Promise<void>;
}

/**
 * Picks a unique schema name for one test file, so that test files running
 * in parallel on the shared database never see each other's tables. The
 * store under test creates the schema, unless `create` asks for it up front.
 */
export async function createTestSchema(prefix: string, options: { create?: boolean } = {}): Promise<TestSchema> {
  const name = `${prefix}_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Pool({ connectionString: testConnectionString, max: 4, application_name: `test-admin-${name}` });
  admin.on("error", () => {});
  await admin.query("SELECT 1");
  if (options.create === true) {
    await admin.query(`CREATE SCHEMA ${name}`);
  }
  return {
    name,
    admin,
    async drop() {
      await admin.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`);
      await admin.end();
    },
  };
}

/** A test file's schema and its stores, from `useTestSchema`. */
export interface TestSchemaFixture {
  /** The schema name (see `TestSchema`); there from the file's `beforeAll` on. */
  readonly name: string;
  /** The pool for the test's own queries (see `TestSchema`); there from the file's `beforeAll` on. */
  readonly admin: pg.Pool;
  /** A table name this file has not used yet: `records_<n>`. */
  nextTable(): string;
  /**
   * Opens a store with its own pool on the test database, in this schema
   * and on a new table unless `options` name others.
   */
  openStore(options?: Omit<PostgresStoreOptions, "pool" | "connectionString">): Promise<PostgresStore>;
}

/**
 * Creates a schema for the calling test file before its tests
 * (`createTestSchema`) and drops it after them. Call it at the top of a file.
 */
export function useTestSchema(prefix: string, options: { create?: boolean } = {}): TestSchemaFixture {
  let schema: TestSchema | undefined;
  let tables = 0;
  beforeAll(async () => {
    schema = await createTestSchema(prefix, options);
  });
  afterAll(async () => {
    await schema?.drop();
  });
  const created = (): TestSchema => {
    if (schema === undefined) {
      throw new Error(`the ${prefix} test schema is used before its beforeAll hook ran`);
    }
    return schema;
  };
  const fixture: TestSchemaFixture = {
    get name() {
      return created().name;
    },
    get admin() {
      return created().admin;
    },
    nextTable: () => `records_${++tables}`,
    openStore: (storeOptions = {}) =>
      createPostgresStore({
        ...storeOptions,
        connectionString: testConnectionString,
        schema: storeOptions.schema ?? created().name,
        table: storeOptions.table ?? fixture.nextTable(),
      }),
  };
  return fixture;
}

/**
 * Ends every backend whose `application_name` is `applicationName`, as
 * `pg_terminate_backend` does when an administrator or a failover cuts
 * connections. Returns how many it ended.
 */
export async function terminateBackends(admin: pg.Pool, applicationName: string): Promise<number> {
  const result = await admin.query<{ ended: boolean }>(
    "SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()",
    [applicationName],
  );
  return result.rows.filter((row) => row.ended).length;
}
