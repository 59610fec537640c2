import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createSqliteStore, type SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { describeAtomicStoreConformance } from "../conformance/atomic-store-conformance.js";

async function openStore(): Promise<{
  store: SqliteStore;
  path: string;
  travel(ms: number): Promise<void>;
  remove(): Promise<void>;
}> {
  const dir = await mkdtemp(join(tmpdir(), "connect-idempotency-atomic-"));
  const path = join(dir, "app.db");
  // A manual store clock, far from the wall clock.
  let now = 1_000_000;
  const store = createSqliteStore({ path, sweepIntervalMs: 0, clock: { now: () => now } });
  store.database.exec("CREATE TABLE app_rows (id TEXT NOT NULL)");
  return {
    store,
    path,
    travel: async (ms) => {
      now += ms;
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Counts rows through a connection of its own: only committed rows count. */
function countRows(path: string, id: string): number {
  const reader = new Database(path, { readonly: true });
  try {
    return (reader.prepare("SELECT count(*) AS n FROM app_rows WHERE id = ?").get(id) as { n: number }).n;
  } finally {
    reader.close();
  }
}

describeAtomicStoreConformance("SQLite file", async () => {
  const { store, path, travel, remove } = await openStore();
  return {
    store,
    travel,
    insertRow(db: Database.Database, id: string) {
      db.prepare("INSERT INTO app_rows (id) VALUES (?)").run(id);
    },
    countRows: async (id) => countRows(path, id),
    cleanup: remove,
  };
});

describe("SQLite atomic operations", () => {
  let store: SqliteStore;
  let path: string;
  let remove: () => Promise<void>;
  const key = { scope: "", method: "demo.v1.PaymentService/CreatePayment", key: "k-1" };

  beforeEach(async () => {
    ({ store, path, remove } = await openStore());
    await store.claim({ key, fingerprint: "fp", owner: "o", leaseMs: 30_000, graceMs: 10_000, expiresInMs: 90_000 });
  });

  afterEach(async () => {
    await store.close();
    await remove();
  });

  it("hands the work the store's own connection", async () => {
    const result = await store.completeWithin({ key, owner: "o", attempt: 1, retentionMs: 1 }, (db) => ({
      value: db === store.database,
      outcome: new Uint8Array([1]),
    }));
    expect(result).toEqual({ kind: "completed", value: true });
  });

  it("refuses work that returns a promise, and writes nothing", async () => {
    const work = async (db: Database.Database) => {
      db.prepare("INSERT INTO app_rows (id) VALUES ('late')").run();
      return { value: 1, outcome: new Uint8Array([1]) };
    };
    await expect(store.completeWithin({ key, owner: "o", attempt: 1, retentionMs: 1 }, work as never)).rejects.toThrow(
      /cannot span an await/,
    );
    await expect(store.transact(work as never)).rejects.toThrow(/cannot span an await/);
    expect(countRows(path, "late")).toBe(0);
    expect((await store.get(key))?.status).toBe("in_progress");
  });

  it("lets the work nest its own better-sqlite3 transactions as savepoints", async () => {
    const result = await store.completeWithin({ key, owner: "o", attempt: 1, retentionMs: 1 }, (db) => {
      const insert = db.prepare("INSERT INTO app_rows (id) VALUES (?)");
      db.transaction(() => insert.run("nested"))();
      try {
        db.transaction(() => {
          insert.run("undone");
          throw new Error("inner failure");
        })();
      } catch {
        // The inner transaction alone rolled back.
      }
      return { value: "ok", outcome: new Uint8Array([1]) };
    });
    expect(result).toEqual({ kind: "completed", value: "ok" });
    expect(countRows(path, "nested")).toBe(1);
    expect(countRows(path, "undone")).toBe(0);
  });

  it("deletes phases with records deleted from outside the store, as an operator's evict does", async () => {
    await store.recordPhase({ key, owner: "o", attempt: 1, name: "charge", result: new Uint8Array([1]) });
    const operator = new Database(path);
    operator.prepare(`DELETE FROM ${store.table} WHERE key = ?`).run(key.key);
    operator.close();
    expect(await store.getPhase({ key, name: "charge" })).toBeUndefined();
  });
});
