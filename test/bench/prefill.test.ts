import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { prefillPostgresRecords } from "../../bench/postgres-prefill.js";
import { paymentRecordMethod, paymentRecordScope } from "../../bench/payment-request.js";
import { copyPrefilledSqlite } from "../../bench/sqlite-prefill.js";
import { createPostgresStore } from "../../src/store/postgres/postgres-store.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { testConnectionString, useTestSchema } from "../support/postgres-database.js";

// The growth scenarios measure stores filled by these bulk inserts rather
// than by the store itself: their records must read back as the store's
// own, intact (checksums included), or every replay of one would fail.

describe("copyPrefilledSqlite()", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it("fills a file whose completed records the store reads back as intact", async () => {
    const dir = await mkdtemp(join(tmpdir(), "prefill-"));
    dirs.push(dir);
    const dest = join(dir, "records.db");
    const report = await copyPrefilledSqlite(200, join(dir, "cache"), dest);
    expect(report.built).toBe(true);
    const raw = new Database(dest, { readonly: true });
    const keys = raw.prepare("SELECT key FROM connect_idempotency_records").pluck().all() as string[];
    raw.close();
    expect(keys).toHaveLength(200);
    const store = createSqliteStore({ path: dest, sweepIntervalMs: 0, integrityCheck: "full" });
    try {
      for (const key of [keys[0]!, keys[199]!]) {
        const record = await store.get({ scope: paymentRecordScope, method: paymentRecordMethod, key });
        expect(record?.status).toBe("completed");
        expect(record?.outcome?.byteLength).toBeGreaterThan(0);
      }
    } finally {
      await store.close();
    }
  });
});

describe("prefillPostgresRecords()", () => {
  const schema = useTestSchema("prefill");

  it("fills the table with completed records the store reads back as intact", async () => {
    await prefillPostgresRecords(testConnectionString, schema.name, 200);
    const { rows } = await schema.admin.query<{ key: string }>(
      `SELECT key FROM ${schema.name}.connect_idempotency_records ORDER BY key`,
    );
    expect(rows).toHaveLength(200);
    const store = await createPostgresStore({ connectionString: testConnectionString, schema: schema.name });
    try {
      for (const { key } of [rows[0]!, rows[199]!]) {
        const record = await store.get({ scope: paymentRecordScope, method: paymentRecordMethod, key });
        expect(record?.status).toBe("completed");
        expect(record?.outcome?.byteLength).toBeGreaterThan(0);
      }
    } finally {
      await store.close();
    }
  });
});
