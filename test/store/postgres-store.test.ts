import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import pg from "pg";
import { describe, expect, it, vi } from "vitest";
import type { ClaimInput, RecordKey } from "../../src/store/idempotency-store.js";
import type { SweepReport } from "../../src/store/record-sweeper.js";
import { createPostgresStore } from "../../src/store/postgres/postgres-store.js";
import { postgresClockMs } from "../../src/store/postgres/postgres-statements.js";
import {
  migratePostgresSchema,
  postgresMetaTable,
  postgresPhasesTable,
  postgresSchemaVersion,
} from "../../src/store/postgres/postgres-migrations.js";
import { describeStoreConformance } from "../conformance/store-conformance.js";
import {
  createTestSchema,
  terminateBackends,
  testConnectionString,
  useTestSchema,
} from "../support/postgres-database.js";
import { useTestDatabaseClock } from "../support/postgres-test-clock.js";
import { startTcpProxy } from "../support/tcp-proxy.js";

const schema = useTestSchema("pgstore");
const clock = useTestDatabaseClock("pgclock");

function claimInput(key: string, owner = randomBytes(8).toString("hex")): ClaimInput {
  return {
    key: { scope: "tenant", method: "demo.v1.PaymentService/CreatePayment", key },
    fingerprint: "f".repeat(64),
    owner,
    leaseMs: 1000,
    graceMs: 0,
    expiresInMs: 60_000,
  };
}

/**
 * Inserts a row with `key` on `blocker` in a transaction it leaves open: a
 * claim of the key waits on the primary key until the transaction ends.
 */
async function holdKey(blocker: pg.PoolClient, table: string, key: RecordKey): Promise<void> {
  await blocker.query("BEGIN");
  await blocker.query(
    `INSERT INTO ${schema.name}.${table} (scope, method, key, status, fingerprint, owner, created_at, updated_at, lease_until, expires_at)
VALUES ($1, $2, $3, 'in_progress', 'other', 'blocker', 1, 1, 1, 1)`,
    [key.scope, key.method, key.key],
  );
}

async function countBackends(applicationName: string): Promise<number> {
  const result = await schema.admin.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1",
    [applicationName],
  );
  return result.rows[0]?.n ?? -1;
}

describeStoreConformance("PostgreSQL", async () => {
  await clock.reset();
  const pool = clock.pool();
  const store = await createPostgresStore({ pool, schema: schema.name, table: schema.nextTable(), sweepIntervalMs: 0 });
  return {
    store,
    travel: clock.travel,
    exact: false,
    async cleanup() {
      await pool.end();
      await schema.admin.query(`DROP TABLE ${schema.name}.${store.table}_phases, ${schema.name}.${store.table}`);
    },
  };
});

describe("PostgreSQL migrations", () => {
  it("creates the schema and the table, and records the layout version", async () => {
    const table = schema.nextTable();
    const store = await schema.openStore({ table });
    try {
      const meta = await schema.admin.query(
        `SELECT table_name, schema_version FROM ${schema.name}.${postgresMetaTable}`,
      );
      expect(meta.rows).toContainEqual({ table_name: table, schema_version: postgresSchemaVersion });
      const columns = await schema.admin.query<{ column_name: string; data_type: string }>(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
        [schema.name, table],
      );
      expect(Object.fromEntries(columns.rows.map((row) => [row.column_name, row.data_type]))).toEqual({
        scope: "text",
        method: "text",
        key: "text",
        status: "text",
        fingerprint: "text",
        owner: "text",
        created_at: "bigint",
        updated_at: "bigint",
        lease_until: "bigint",
        expires_at: "bigint",
        takeovers: "integer",
        outcome: "bytea",
        interrupted: "boolean",
        checksum: "bytea",
        replay_until: "bigint",
        outcome_code: "integer",
      });
    } finally {
      await store.close();
    }
  });

  it("re-opens an existing table without migrating again, keeping its records", async () => {
    const table = schema.nextTable();
    const first = await schema.openStore({ table });
    const input = claimInput("kept");
    expect((await first.claim(input)).kind).toBe("claimed");
    await first.close();

    const pool = new pg.Pool({ connectionString: testConnectionString, max: 1 });
    try {
      // The version found before migrating: the table is already current.
      expect(await migratePostgresSchema(pool, schema.name, table)).toBe(postgresSchemaVersion);
    } finally {
      await pool.end();
    }
    const second = await schema.openStore({ table });
    try {
      expect((await second.get(input.key))?.owner).toBe(input.owner);
      const meta = await schema.admin.query(
        `SELECT schema_version FROM ${schema.name}.${postgresMetaTable} WHERE table_name = $1`,
        [table],
      );
      expect(meta.rows).toEqual([{ schema_version: postgresSchemaVersion }]);
    } finally {
      await second.close();
    }
  });

  it("migrates a version 2 table to 3: its records stay, in progress ones become interruptible", async () => {
    const table = schema.nextTable();
    const first = await schema.openStore({ table });
    const input = claimInput("running", "owner-1");
    expect((await first.claim(input)).kind).toBe("claimed");
    await first.close();
    // Back to the layout of version 2, which had no `interrupted` (3), `checksum` (4) or `replay_until` and `outcome_code` (5) column.
    await schema.admin.query(
      `ALTER TABLE ${schema.name}.${table} DROP COLUMN interrupted, DROP COLUMN checksum, DROP COLUMN replay_until, DROP COLUMN outcome_code`,
    );
    await schema.admin.query(
      `UPDATE ${schema.name}.${postgresMetaTable} SET schema_version = 2 WHERE table_name = $1`,
      [table],
    );

    const second = await schema.openStore({ table });
    try {
      const meta = await schema.admin.query(
        `SELECT schema_version FROM ${schema.name}.${postgresMetaTable} WHERE table_name = $1`,
        [table],
      );
      expect(meta.rows).toEqual([{ schema_version: postgresSchemaVersion }]);
      expect(await second.get(input.key)).toMatchObject({ status: "in_progress", attempt: 1, owner: "owner-1" });
      expect(await second.interrupt({ key: input.key, owner: "owner-1", attempt: 1 })).toBe(true);
      const takeover = await second.claim(claimInput("running", "owner-2"));
      expect(takeover).toMatchObject({
        kind: "claimed",
        replaced: "takeover",
        record: { attempt: 2, status: "in_progress" },
      });
    } finally {
      await second.close();
    }
  });

  it("lets several stores migrate a new schema at once", async () => {
    // A schema that does not exist yet, so that every store races to create it.
    const fresh = await createTestSchema("pgrace");
    try {
      // Settled, not raced: a failed store must not leave the others
      // migrating while the schema is dropped.
      const opened = await Promise.allSettled(
        Array.from({ length: 6 }, () =>
          createPostgresStore({ connectionString: testConnectionString, schema: fresh.name, maxConnections: 1 }),
        ),
      );
      const stores = opened.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
      try {
        expect(opened.filter((result) => result.status === "rejected")).toEqual([]);
        const meta = await fresh.admin.query(
          `SELECT table_name, schema_version FROM ${fresh.name}.${postgresMetaTable}`,
        );
        expect(meta.rows).toEqual([
          { table_name: "connect_idempotency_records", schema_version: postgresSchemaVersion },
        ]);
        // Every store works on the one table.
        expect((await stores[0]!.claim(claimInput("shared"))).kind).toBe("claimed");
        expect((await stores[5]!.claim(claimInput("shared"))).kind).toBe("existing");
      } finally {
        await Promise.all(stores.map((store) => store.close()));
      }
    } finally {
      await fresh.drop();
    }
  });

  it("refuses a table migrated by a newer version, and ends the pool it opened", async () => {
    const table = schema.nextTable();
    await (await schema.openStore({ table })).close();
    await schema.admin.query(
      `UPDATE ${schema.name}.${postgresMetaTable} SET schema_version = 99 WHERE table_name = $1`,
      [table],
    );
    const applicationName = `pg-newer-${table}`;
    await expect(schema.openStore({ table, applicationName })).rejects.toThrow(/schema version 99, newer than/);
    await vi.waitFor(async () => expect(await countBackends(applicationName)).toBe(0));
  });
});

describe("PostgreSQL sweeper", () => {
  /** Inserts `count` rows; `values` gives status to outcome, with `now` the database's clock in ms. */
  async function insertRows(table: string, count: number, values: string): Promise<void> {
    await schema.admin.query(
      `INSERT INTO ${schema.name}.${table} (scope, method, key, status, fingerprint, owner, created_at, updated_at, lease_until, expires_at, outcome)
SELECT 's', 'm', $1 || i, ${values} FROM generate_series(1, $2::int) AS i, (SELECT ${postgresClockMs} AS now) AS clock`,
      [`${table}-`, count],
    );
  }

  it("removes 5,000 expired rows in batches of the configured size, sparing live ones", async () => {
    const table = schema.nextTable();
    const reports: SweepReport[] = [];
    const store = await schema.openStore({ table, sweepIntervalMs: 0 });
    // Expired and completed, expired with an ended lease, expired but with a
    // live lease (kept), and completed but unexpired (kept), by the database's clock.
    await insertRows(
      table,
      4_000,
      "'completed', 'f', 'o', now - 9000, now - 9000, now - 9000, now - 5000, '\\x01'::bytea",
    );
    await schema.admin.query(
      `INSERT INTO ${schema.name}.${table} (scope, method, key, status, fingerprint, owner, created_at, updated_at, lease_until, expires_at)
SELECT 's2', 'm', 'k' || i, 'in_progress', 'f', 'o', now - 9000, now - 9000, now - 1000, now - 1 FROM generate_series(1, 1000) AS i, (SELECT ${postgresClockMs} AS now) AS clock
UNION ALL SELECT 'live', 'm', 'leased', 'in_progress', 'f', 'o', now, now, now + 600000, now - 5000 FROM (SELECT ${postgresClockMs} AS now) AS clock
UNION ALL SELECT 'live', 'm', 'retained', 'completed', 'f', 'o', now, now, now, now + 600000 FROM (SELECT ${postgresClockMs} AS now) AS clock`,
    );
    await store.close();

    const sweeping = await schema.openStore({
      table,
      sweepIntervalMs: 10,
      sweepBatchSize: 500,
      onSweep: (report) => reports.push(report),
    });
    try {
      await vi.waitFor(() => expect(reports.length).toBeGreaterThan(0), { timeout: 10_000 });
      // Ten full batches, then one that comes back short and ends the pass.
      expect(reports[0]).toEqual({ deleted: 5_000, batches: 11, tombstoned: 0, tombstoneBatches: 1 });
      const left = await schema.admin.query(`SELECT key FROM ${schema.name}.${table} ORDER BY key`);
      expect(left.rows).toEqual([{ key: "leased" }, { key: "retained" }]);
    } finally {
      await sweeping.close();
    }
    const afterClose = reports.length;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(reports.length).toBe(afterClose);
  });

  it("sweep({ limit }) deletes at most limit rows", async () => {
    const table = schema.nextTable();
    const store = await schema.openStore({ table, sweepIntervalMs: 0, sweepBatchSize: 4 });
    try {
      await insertRows(table, 10, "'completed', 'f', 'o', now - 9000, now - 9000, now - 9000, now - 5000, NULL");
      expect(await store.sweep({ limit: 7 })).toBe(7);
      expect(await store.sweep({ limit: 7 })).toBe(3);
      expect(await store.sweep({ limit: 7 })).toBe(0);
    } finally {
      await store.close();
    }
  });

  it("reports a failed background pass instead of crashing", async () => {
    const table = schema.nextTable();
    const reports: SweepReport[] = [];
    const store = await schema.openStore({ table, sweepIntervalMs: 10, onSweep: (report) => reports.push(report) });
    try {
      // CASCADE drops the foreign key of the phases table, which stays.
      await schema.admin.query(`DROP TABLE ${schema.name}.${table} CASCADE`);
      await vi.waitFor(() => expect(reports.some((report) => report.error !== undefined)).toBe(true), {
        timeout: 10_000,
      });
      expect(String(reports.find((report) => report.error !== undefined)?.error)).toMatch(/does not exist/);
    } finally {
      await store.close();
    }
  });
});

describe("PostgreSQL identifiers", () => {
  it("quotes schema and table names with quotes, spaces, capitals and non-ASCII", async () => {
    const oddSchema = `${schema.name} Odd "Schema"; DROP`;
    const oddTable = `Tab"le -- 名; DROP TABLE x`;
    const store = await schema.openStore({ schema: oddSchema, table: oddTable });
    try {
      const input = claimInput("odd");
      expect((await store.claim(input)).kind).toBe("claimed");
      expect(await store.complete({ ...input, attempt: 1, outcome: new Uint8Array([7]), retentionMs: 0 })).toBe(true);
      expect((await store.get(input.key))?.outcome).toEqual(new Uint8Array([7]));
      expect(await store.sweep({ limit: 10 })).toBe(1);
      const found = await schema.admin.query("SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY 1", [
        oddSchema,
      ]);
      expect(found.rows).toEqual([
        { tablename: oddTable },
        { tablename: postgresPhasesTable(oddTable) },
        { tablename: postgresMetaTable },
      ]);
    } finally {
      await store.close();
      await schema.admin.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(oddSchema)} CASCADE`);
    }
  });

  it("stores scopes, methods and keys as they are, escaping only U+0000 and U+0001", async () => {
    const table = schema.nextTable();
    const store = await schema.openStore({ table });
    try {
      const plain = claimInput("Req-1 \\ 'quoted'");
      const controlInput = claimInput("a\u0000b\u0001c");
      const control = { ...controlInput, key: { ...controlInput.key, scope: "t\u0000" } };
      await store.claim(plain);
      await store.claim(control);
      const rows = await schema.admin.query(`SELECT scope, key FROM ${schema.name}.${table}`);
      expect(rows.rows).toHaveLength(2);
      expect(rows.rows).toEqual(
        expect.arrayContaining([
          { scope: "tenant", key: "Req-1 \\ 'quoted'" },
          { scope: "t\u0001\u0002", key: "a\u0001\u0002b\u0001\u0001c" },
        ]),
      );
      expect((await store.get(control.key))?.key).toBe("a\u0000b\u0001c");
    } finally {
      await store.close();
    }
  });

  it("rejects names PostgreSQL would truncate, before connecting", async () => {
    await expect(
      createPostgresStore({ connectionString: "postgres://nobody@127.0.0.1:1/none", table: "t".repeat(64) }),
    ).rejects.toThrow(/longer than 63 bytes/);
    await expect(
      createPostgresStore({ connectionString: "postgres://nobody@127.0.0.1:1/none", schema: "" }),
    ).rejects.toThrow(/must not be empty/);
  });
});

describe("PostgreSQL operations", () => {
  it("never block the event loop: no blockingWaitMs", async () => {
    const store = await schema.openStore();
    try {
      expect(store.blockingWaitMs ?? 0).toBe(0);
    } finally {
      await store.close();
    }
  });

  it("complete whose commit succeeded but whose answer was lost reports success when retried, not a lost claim", async () => {
    const url = new URL(testConnectionString);
    const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
    url.host = `127.0.0.1:${proxy.port}`;
    const table = schema.nextTable();
    const store = await createPostgresStore({
      connectionString: url.toString(),
      schema: schema.name,
      table,
      sweepIntervalMs: 0,
    });
    try {
      const input = claimInput("answer-lost", "owner-1");
      const claimed = await store.claim(input);
      expect(claimed.kind).toBe("claimed");
      const done = {
        key: input.key,
        owner: "owner-1",
        attempt: 1,
        outcome: new Uint8Array([4, 2]),
        retentionMs: 60_000,
      };
      proxy.swallowAnswers = true;
      const first = store.complete(done).then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      );
      // The database committed the completion; its answer is on its way to nobody.
      await vi.waitFor(async () => {
        const row = await schema.admin.query(`SELECT status FROM ${schema.name}.${table} WHERE key = $1`, [
          input.key.key,
        ]);
        expect(row.rows).toEqual([{ status: "completed" }]);
      });
      proxy.cutConnections();
      expect(await first).toMatchObject({ error: expect.anything() });
      proxy.swallowAnswers = false;
      // The caller retries what it does not know the outcome of: success, not "claim lost".
      expect(await store.complete(done)).toBe(true);
      expect(await store.get(input.key)).toMatchObject({
        status: "completed",
        owner: "owner-1",
        attempt: 1,
        outcome: new Uint8Array([4, 2]),
      });
    } finally {
      await store.close();
      await proxy.close();
    }
  });
});

describe("PostgreSQL connections", () => {
  it("close() ends the pool it created and leaves a pool passed in open", async () => {
    const applicationName = `pg-own-${randomBytes(4).toString("hex")}`;
    const own = await schema.openStore({ applicationName });
    await own.get(claimInput("any").key);
    expect(await countBackends(applicationName)).toBeGreaterThan(0);
    await own.close();
    await own.close();
    // The server notices the closed connections a moment later.
    await vi.waitFor(async () => expect(await countBackends(applicationName)).toBe(0));
    await expect(own.get(claimInput("any").key)).rejects.toThrow(/closed/);

    const pool = new pg.Pool({ connectionString: testConnectionString, max: 2 });
    try {
      const passed = await createPostgresStore({ pool, schema: schema.name, table: schema.nextTable() });
      expect(passed.pool).toBe(pool);
      await passed.close();
      expect((await pool.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    } finally {
      await pool.end();
    }
  });

  it("rejects an operation whose connection is killed, and recovers with new connections", async () => {
    const applicationName = `pg-kill-${randomBytes(4).toString("hex")}`;
    const table = schema.nextTable();
    const store = await schema.openStore({ table, applicationName, maxConnections: 2 });
    const blocker = await schema.admin.connect();
    try {
      // An uncommitted row with the same key makes the claim wait on the
      // primary key, so that it is in flight when its connection dies.
      const input = claimInput("killed");
      await holdKey(blocker, table, input.key);
      const claimFailure = store.claim(input).then(
        (result) => result,
        (error: unknown) => error,
      );
      await vi.waitFor(async () => {
        const waiting = await schema.admin.query(
          "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
          [applicationName],
        );
        expect(waiting.rowCount).toBe(1);
      });
      expect(await terminateBackends(schema.admin, applicationName)).toBeGreaterThan(0);
      expect(String(await claimFailure)).toMatch(/terminating connection due to administrator command/);
      await blocker.query("ROLLBACK");

      // Idle connections die too; the pool drops them without crashing the process.
      await store.get(input.key);
      await terminateBackends(schema.admin, applicationName);
      await vi.waitFor(async () => expect((await store.claim(input)).kind).toBe("claimed"));
      expect((await store.get(input.key))?.owner).toBe(input.owner);
    } finally {
      blocker.release();
      await store.close();
    }
  });

  it("turns a claim blocked past statementTimeoutMs into a rejection", async () => {
    const table = schema.nextTable();
    const store = await schema.openStore({ table, statementTimeoutMs: 200 });
    const blocker = await schema.admin.connect();
    try {
      const input = claimInput("slow");
      await holdKey(blocker, table, input.key);
      await expect(store.claim(input)).rejects.toThrow(/statement timeout/);
      await blocker.query("ROLLBACK");
      expect((await store.claim(input)).kind).toBe("claimed");
    } finally {
      blocker.release();
      await store.close();
    }
  });
});

describe("the optional pg dependency", () => {
  it("the package root loads without pg, and createPostgresStore says what is missing", async () => {
    // Runs in a child whose module resolution cannot find pg.
    const hideModule = `export async function resolve(specifier, context, next) {
  if (specifier === "pg" || specifier.startsWith("pg/")) {
    throw Object.assign(new Error("Cannot find package 'pg'"), { code: "ERR_MODULE_NOT_FOUND" });
  }
  return next(specifier, context);
}`;
    const register = `import { register } from "node:module";
register("data:text/javascript,${encodeURIComponent(hideModule)}");`;
    const script = `const root = await import(${JSON.stringify(new URL("../../src/index.ts", import.meta.url).href)});
try {
  await root.createPostgresStore({ connectionString: ${JSON.stringify(testConnectionString)} });
  console.log("created");
} catch (error) {
  console.log(error.message);
}`;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [
        "--import",
        "tsx",
        "--import",
        `data:text/javascript,${encodeURIComponent(register)}`,
        "--input-type=module",
        "-e",
        script,
      ],
      { cwd: new URL("../..", import.meta.url).pathname },
    );
    expect(stdout.trim()).toBe("createPostgresStore: needs the optional dependency pg (npm install pg)");
  });
});
