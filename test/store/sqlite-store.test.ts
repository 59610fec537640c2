import { type ChildProcessByStdio, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ClaimInput, RecordKey } from "../../src/store/idempotency-store.js";
import type { SweepReport } from "../../src/store/record-sweeper.js";
import { createSqliteBatchExecutor } from "../../src/store/sqlite/sqlite-batch-executor.js";
import { startSqliteCheckpointer } from "../../src/store/sqlite/sqlite-checkpointer.js";
import { sqliteSchemaVersion } from "../../src/store/sqlite/sqlite-schema.js";
import { createSqliteStore, type SqliteStore, type SqliteStoreOptions } from "../../src/store/sqlite/sqlite-store.js";
import { describeStoreConformance } from "../conformance/store-conformance.js";
import { t0 } from "../support/conformance-claim.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const workerPath = fileURLToPath(new URL("../support/sqlite-claim-worker.ts", import.meta.url));

async function tempDir(): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "connect-idempotency-sqlite-"));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** A store clock that moves only when a test moves it, from `t0` on. */
function manualClock(): { now: () => number; travel(ms: number): Promise<void> } {
  let now = t0;
  return {
    now: () => now,
    async travel(ms) {
      now += ms;
    },
  };
}

describeStoreConformance("SQLite :memory:", async () => {
  const clock = manualClock();
  return {
    store: createSqliteStore({ path: ":memory:", sweepIntervalMs: 0, clock }),
    travel: clock.travel,
    exact: true,
    cleanup: async () => {},
  };
});

for (const durability of ["normal", "full"] as const) {
  describeStoreConformance(`SQLite file, durability ${durability}`, async () => {
    const temp = await tempDir();
    const clock = manualClock();
    return {
      store: createSqliteStore({ path: join(temp.dir, "records.db"), durability, sweepIntervalMs: 0, clock }),
      travel: clock.travel,
      exact: true,
      cleanup: temp.remove,
    };
  });
}

const method = "demo.v1.PaymentService/CreatePayment";

function claimInput(id: string, overrides: Partial<ClaimInput> = {}): ClaimInput {
  return {
    key: { scope: "s", method, key: id },
    fingerprint: "fp",
    owner: `owner-${id}`,
    leaseMs: 30_000,
    graceMs: 10_000,
    expiresInMs: 3_600_000,
    ...overrides,
  };
}

function keyOf(id: string): RecordKey {
  return { scope: "s", method, key: id };
}

describe("createSqliteStore", () => {
  let dir: string;
  let removeDir: () => Promise<void>;
  const opened: SqliteStore[] = [];
  const connections: Database.Database[] = [];

  function open(options: Partial<SqliteStoreOptions> = {}): SqliteStore {
    const store = createSqliteStore({ path: join(dir, "records.db"), sweepIntervalMs: 0, ...options });
    opened.push(store);
    return store;
  }

  function connect(path = join(dir, "records.db")): Database.Database {
    const db = new Database(path);
    connections.push(db);
    return db;
  }

  beforeEach(async () => {
    ({ dir, remove: removeDir } = await tempDir());
  });

  afterEach(async () => {
    vi.useRealTimers();
    for (const db of connections.splice(0)) db.close();
    await Promise.all(opened.splice(0).map((store) => store.close()));
    await removeDir();
  });

  describe("connection settings", () => {
    it.each([
      ["normal", 0],
      ["full", 1],
    ] as const)(
      "applies WAL and the busy timeout, and with durability %s syncs %i times per batch",
      async (durability, syncsPerBatch) => {
        const store = open({ durability, busyTimeoutMs: 1234 });
        expect(store.database.pragma("journal_mode", { simple: true })).toBe("wal");
        // Full durability fsyncs after the commit, off the event loop, instead of inside it.
        expect(store.database.pragma("synchronous", { simple: true })).toBe(1);
        // SQLite itself waits for a lock only briefly; the executor waits for the rest, asynchronously.
        expect(store.database.pragma("busy_timeout", { simple: true })).toBe(store.blockingWaitMs);
        // WAL is a property of the file: every other connection gets it too.
        expect(connect().pragma("journal_mode", { simple: true })).toBe("wal");
        const before = store.executor.syncs;
        await Promise.all([store.claim(claimInput("a")), store.claim(claimInput("b"))]);
        await store.get(keyOf("a"));
        expect(store.executor.syncs - before).toBe(2 * syncsPerBatch);
      },
    );

    it("reopens an existing file with durability full, and still syncs every batch", async () => {
      const first = open({ durability: "full" });
      await first.claim(claimInput("a"));
      await first.close();
      // The last connection closed: no WAL file is left for the next store to find.
      expect(existsSync(join(dir, "records.db-wal"))).toBe(false);
      const second = open({ durability: "full" });
      const before = second.executor.syncs;
      expect((await second.claim(claimInput("a"))).kind).toBe("existing");
      expect((await second.claim(claimInput("b"))).kind).toBe("claimed");
      expect(second.executor.syncs - before).toBe(2);
    });

    it("defaults to durability normal, and blocks the event loop on a lock for a few ms at most", () => {
      const store = open();
      expect(store.database.pragma("synchronous", { simple: true })).toBe(1);
      expect(store.blockingWaitMs).toBeLessThanOrEqual(5);
      expect(store.database.pragma("busy_timeout", { simple: true })).toBe(store.blockingWaitMs);
    });

    it("says that an operation blocks the event loop for a few milliseconds at most, whatever the busy timeout", () => {
      // Lock waits are retried off the event loop; only SQLite's own short busy wait blocks.
      expect(open().blockingWaitMs).toBeLessThanOrEqual(5);
      expect(open({ table: "other", busyTimeoutMs: 250 }).blockingWaitMs).toBeLessThanOrEqual(5);
    });

    it("rejects a table name that is not a plain identifier, and an unknown durability", () => {
      expect(() => open({ table: "records; DROP TABLE x" })).toThrow(/invalid SQLite table name/);
      expect(() => open({ durability: "paranoid" as "full" })).toThrow(/durability/);
    });

    it("throws when the file cannot be opened", () => {
      expect(() => createSqliteStore({ path: join(dir, "missing", "records.db") })).toThrow(/directory does not exist/);
    });
  });

  describe("schema", () => {
    it("records its version and reopens an existing file without migrating twice", async () => {
      const first = open();
      expect((await first.claim(claimInput("a"))).kind).toBe("claimed");
      await first.close();
      const meta = () => connect().prepare("SELECT table_name, schema_version FROM connect_idempotency_meta").all();
      expect(meta()).toEqual([{ table_name: "connect_idempotency_records", schema_version: sqliteSchemaVersion }]);

      const second = open();
      expect(await second.get(keyOf("a"))).toMatchObject({ owner: "owner-a", status: "in_progress" });
      expect(meta()).toEqual([{ table_name: "connect_idempotency_records", schema_version: sqliteSchemaVersion }]);
    });

    it("keeps the version per table, so one file can hold several stores", async () => {
      const a = open();
      const b = open({ table: "other_records" });
      await a.claim(claimInput("x", { owner: "in-a" }));
      expect((await b.claim(claimInput("x", { owner: "in-b" }))).kind).toBe("claimed");
      expect((await a.get(keyOf("x")))?.owner).toBe("in-a");
      expect(
        connect().prepare("SELECT table_name FROM connect_idempotency_meta ORDER BY table_name").pluck().all(),
      ).toEqual(["connect_idempotency_records", "other_records"]);
    });

    it("migrates a version 2 table to 3: its records stay, in progress ones become interruptible", async () => {
      const first = open();
      await first.claim(claimInput("running"));
      await first.claim(claimInput("done"));
      expect(
        await first.complete({
          key: keyOf("done"),
          owner: "owner-done",
          attempt: 1,
          outcome: new Uint8Array([5]),
          retentionMs: 60_000,
        }),
      ).toBe(true);
      await first.close();
      // Back to the layout of version 2, which had no `interrupted` (3) or `checksum` (4) column.
      const old = connect();
      old.exec("ALTER TABLE connect_idempotency_records DROP COLUMN interrupted");
      old.exec("ALTER TABLE connect_idempotency_records DROP COLUMN checksum");
      old.exec("DROP INDEX connect_idempotency_records_tombstone");
      old.exec("ALTER TABLE connect_idempotency_records DROP COLUMN replay_until");
      old.exec("ALTER TABLE connect_idempotency_records DROP COLUMN outcome_code");
      old.prepare("UPDATE connect_idempotency_meta SET schema_version = 2").run();
      old.close();

      const second = open();
      expect(connect().prepare("SELECT schema_version FROM connect_idempotency_meta").pluck().get()).toBe(
        sqliteSchemaVersion,
      );
      expect(await second.get(keyOf("done"))).toMatchObject({
        status: "completed",
        attempt: 1,
        outcome: new Uint8Array([5]),
      });
      // Written before tombstones: no replay end, replayed until it expires.
      expect((await second.get(keyOf("done")))?.replayUntil).toBeUndefined();
      expect(await second.get(keyOf("running"))).toMatchObject({ status: "in_progress", attempt: 1 });
      expect(await second.interrupt({ key: keyOf("running"), owner: "owner-running", attempt: 1 })).toBe(true);
      const takeover = await second.claim(claimInput("running", { owner: "next" }));
      expect(takeover).toMatchObject({ kind: "claimed", replaced: "takeover", record: { attempt: 2 } });
    });

    it("finds the bodies to drop through the partial tombstone index", () => {
      const store = open();
      const plan = store.database
        .prepare(
          `EXPLAIN QUERY PLAN SELECT rowid FROM connect_idempotency_records
WHERE replay_until <= 5 AND replay_until IS NOT NULL AND outcome IS NOT NULL AND status = 'completed' LIMIT 10`,
        )
        .all() as { detail: string }[];
      expect(plan.map((row) => row.detail).join("\n")).toMatch(/USING INDEX connect_idempotency_records_tombstone/);
    });

    it("refuses a table migrated by a newer version", async () => {
      await open().close();
      connect()
        .prepare("UPDATE connect_idempotency_meta SET schema_version = ?")
        .run(sqliteSchemaVersion + 1);
      expect(() => open()).toThrow(/newer than/);
    });

    it("sweeps through a covering index, never scanning the table", () => {
      const store = open();
      const plan = store.database
        .prepare(
          `EXPLAIN QUERY PLAN SELECT rowid FROM connect_idempotency_records WHERE expires_at <= 5 AND lease_until <= 5 LIMIT 10`,
        )
        .all() as { detail: string }[];
      expect(plan.map((row) => row.detail).join("\n")).toMatch(
        /USING COVERING INDEX connect_idempotency_records_sweep/,
      );
    });
  });

  describe("group commit", () => {
    it("runs the operations of one event loop turn in one transaction, in submission order", async () => {
      const store = open({ durability: "full" });
      const before = store.executor.transactions;
      const distinct = Array.from({ length: 50 }, (_, i) => store.claim(claimInput(`k${i}`)));
      const same = Array.from({ length: 10 }, (_, i) => store.claim(claimInput("shared", { owner: `o${i}` })));
      const read = store.get(keyOf("shared"));
      const results = await Promise.all([...distinct, ...same]);
      expect(store.executor.transactions - before).toBe(1);
      expect(results.slice(0, 50).every((result) => result.kind === "claimed")).toBe(true);
      // Sequential within the batch: the first claim of the shared key won.
      expect(results[50]).toMatchObject({ kind: "claimed", record: { owner: "o0" } });
      for (const result of results.slice(51)) {
        expect(result).toMatchObject({ kind: "existing", record: { owner: "o0" } });
      }
      expect((await read)?.owner).toBe("o0");
      // And it is on disk for every other connection.
      expect(connect().prepare("SELECT count(*) FROM connect_idempotency_records").pluck().get()).toBe(51);
    });

    it("gives each operation its own transaction when turned off", async () => {
      const store = open({ groupCommit: false });
      const before = store.executor.transactions;
      await Promise.all(Array.from({ length: 20 }, (_, i) => store.claim(claimInput(`k${i}`))));
      expect(store.executor.transactions - before).toBe(20);
    });

    it("settles a batch only once the sync after its commit resolved, and rejects it when the sync fails", async () => {
      const syncs: { resolve(): void; reject(error: Error): void }[] = [];
      const sync = () => new Promise<void>((resolve, reject) => syncs.push({ resolve, reject }));
      const db = new Database(join(dir, "sync.db"));
      db.exec("CREATE TABLE t (n INTEGER)");
      const executor = createSqliteBatchExecutor(db, { sync });
      try {
        const settled: string[] = [];
        const first = executor.run((d) => d.prepare("INSERT INTO t VALUES (1)").run().changes);
        void first.then(() => settled.push("first"));
        await vi.waitFor(() => expect(syncs).toHaveLength(1));
        // Committed, visible to everyone, but not reported until synced.
        expect(connect(join(dir, "sync.db")).prepare("SELECT count(*) FROM t").pluck().get()).toBe(1);
        // The next batch runs meanwhile.
        const second = executor.run((d) => d.prepare("INSERT INTO t VALUES (2)").run().changes);
        await vi.waitFor(() => expect(syncs).toHaveLength(2));
        await new Promise((resolve) => setImmediate(resolve));
        expect(settled).toEqual([]);
        syncs[0]!.resolve();
        expect(await first).toBe(1);
        syncs[1]!.reject(Object.assign(new Error("EIO: i/o error, fsync"), { code: "EIO" }));
        await expect(second).rejects.toMatchObject({ code: "EIO" });
        expect(executor.syncs).toBe(2);
      } finally {
        executor.close();
      }
    });

    it("splits a backlog larger than maxBatchSize into transactions, keeping the order", async () => {
      const executor = createSqliteBatchExecutor(new Database(":memory:"), { maxBatchSize: 2 });
      try {
        const order: number[] = [];
        const results = await Promise.all(
          [1, 2, 3, 4, 5].map((n) =>
            executor.run(() => {
              order.push(n);
              return n * 10;
            }),
          ),
        );
        expect(results).toEqual([10, 20, 30, 40, 50]);
        expect(order).toEqual([1, 2, 3, 4, 5]);
        expect(executor.transactions).toBe(3);
        expect(executor.jobs).toBe(5);
      } finally {
        executor.close();
      }
      expect(executor.closed).toBe(true);
      await expect(executor.run(() => 1)).rejects.toThrow(/closed/);
    });

    it("rolls back and rejects only the job that failed", async () => {
      const store = open();
      const insert = store.database.prepare(
        `INSERT INTO connect_idempotency_records (scope, method, key, status, fingerprint, owner, created_at, updated_at, lease_until, expires_at)
         VALUES ('s', '${method}', ?, 'in_progress', 'fp', 'job', 0, 0, 0, 1)`,
      );
      const before = store.executor.transactions;
      const a = store.claim(claimInput("a"));
      const failing = store.executor.run(() => {
        insert.run("written-by-failing-job");
        throw new Error("handler write failed");
      });
      const b = store.claim(claimInput("b"));
      await expect(failing).rejects.toThrow("handler write failed");
      expect((await a).kind).toBe("claimed");
      expect((await b).kind).toBe("claimed");
      expect(store.executor.transactions - before).toBe(1);
      expect(await store.get(keyOf("written-by-failing-job"))).toBeUndefined();
      expect(await store.get(keyOf("b"))).toBeDefined();

      // Alone in its batch, a failing job is rolled back too.
      await expect(
        store.executor.run(() => {
          insert.run("alone");
          throw new Error("again");
        }),
      ).rejects.toThrow("again");
      expect(await store.get(keyOf("alone"))).toBeUndefined();
    });

    it("rejects only the store operation that failed, and commits the rest of its batch", async () => {
      const store = open();
      const before = store.executor.transactions;
      const [a, bad, b] = await Promise.allSettled([
        store.claim(claimInput("a")),
        // NOT NULL: the statement fails inside the shared transaction.
        store.claim(claimInput("bad", { fingerprint: null as unknown as string })),
        store.claim(claimInput("b")),
      ]);
      expect(store.executor.transactions - before).toBe(1);
      expect(bad).toMatchObject({ status: "rejected", reason: { code: "SQLITE_CONSTRAINT_NOTNULL" } });
      expect(a).toMatchObject({ status: "fulfilled", value: { kind: "claimed" } });
      expect(b).toMatchObject({ status: "fulfilled", value: { kind: "claimed" } });
      expect(await store.get(keyOf("bad"))).toBeUndefined();
      expect(connect().prepare("SELECT key FROM connect_idempotency_records ORDER BY key").pluck().all()).toEqual([
        "a",
        "b",
      ]);
    });

    it("rejects every operation of a batch whose commit fails, and applies none", async () => {
      const store = open();
      // A deferred foreign key is only checked at COMMIT, so it makes the
      // commit itself fail.
      store.database.exec(`PRAGMA foreign_keys = ON;
        CREATE TABLE parent (id INTEGER PRIMARY KEY);
        CREATE TABLE child (parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)`);
      const orphan = store.database.prepare("INSERT INTO child (parent_id) VALUES (42)");
      const a = store.claim(claimInput("a"));
      const job = store.executor.run(() => orphan.run().changes);
      const b = store.claim(claimInput("b"));
      for (const operation of [a, job, b]) {
        await expect(operation).rejects.toMatchObject({ code: "SQLITE_CONSTRAINT_FOREIGNKEY" });
      }
      expect(await store.get(keyOf("a"))).toBeUndefined();
      expect(await store.get(keyOf("b"))).toBeUndefined();
      expect(store.database.inTransaction).toBe(false);
      expect((await store.claim(claimInput("a"))).kind).toBe("claimed");
    });

    it("runs operations queued before close, then rejects new ones", async () => {
      const store = open();
      const claim = store.claim(claimInput("a"));
      const closing = store.close();
      expect((await claim).kind).toBe("claimed");
      await closing;
      await expect(store.claim(claimInput("b"))).rejects.toThrow(/closed/);
      expect((await open().get(keyOf("a")))?.owner).toBe("owner-a");
    });
  });

  describe("failures", () => {
    it("rejects writes with SQLITE_READONLY when the database refuses writes, without hanging", async () => {
      const store = open();
      await store.claim(claimInput("a"));
      // Tests run as root, which chmod cannot stop; query_only makes SQLite
      // refuse writes the same way a read-only file does.
      store.database.pragma("query_only = ON");
      const attempts = [
        store.claim(claimInput("b")),
        store.complete({ key: keyOf("a"), owner: "owner-a", attempt: 1, outcome: new Uint8Array([1]), retentionMs: 1 }),
        store.interrupt({ key: keyOf("a"), owner: "owner-a", attempt: 1 }),
        store.release({ key: keyOf("a"), owner: "owner-a", attempt: 1 }),
        store.renew({ key: keyOf("a"), owner: "owner-a", attempt: 1, leaseMs: 60_000 }),
        store.sweep({ limit: 10 }),
      ];
      for (const attempt of attempts) {
        await expect(attempt).rejects.toMatchObject({ code: "SQLITE_READONLY" });
      }
      // Reads still work.
      expect((await store.get(keyOf("a")))?.owner).toBe("owner-a");
      store.database.pragma("query_only = OFF");
      expect((await store.claim(claimInput("b"))).kind).toBe("claimed");
    });

    it("rejects with SQLITE_BUSY when another process holds the write lock past the timeout, and reads go on", async () => {
      const store = open({ busyTimeoutMs: 50 });
      await store.claim(claimInput("a"));
      const other = connect();
      other.exec("BEGIN IMMEDIATE");
      await expect(store.claim(claimInput("b"))).rejects.toMatchObject({ code: "SQLITE_BUSY" });
      // WAL: readers never wait for the writer.
      expect((await store.get(keyOf("a")))?.owner).toBe("owner-a");
      other.exec("ROLLBACK");
      expect((await store.claim(claimInput("b"))).kind).toBe("claimed");
    });

    it("rejects with SQLITE_FULL when the disk is full, and reports exactly what was committed", async () => {
      const store = open();
      await store.claim(claimInput("big"));
      const pages = store.database.pragma("page_count", { simple: true }) as number;
      store.database.pragma(`max_page_count = ${pages + 2}`);
      const [small, big, after] = await Promise.allSettled([
        store.claim(claimInput("small")),
        store.complete({
          key: keyOf("big"),
          owner: "owner-big",
          attempt: 1,
          outcome: new Uint8Array(1 << 20),
          retentionMs: 1,
        }),
        store.claim(claimInput("after")),
      ]);
      expect(big).toMatchObject({ status: "rejected", reason: { code: "SQLITE_FULL" } });
      expect((await store.get(keyOf("big")))?.status).toBe("in_progress");
      expect(after.status).toBe("fulfilled");
      // Whatever resolved is in the database; whatever rejected is not.
      for (const [id, settled] of [
        ["small", small],
        ["after", after],
      ] as const) {
        const stored = await store.get(keyOf(id));
        if (settled.status === "fulfilled") expect(stored?.owner).toBe(`owner-${id}`);
        else expect(stored).toBeUndefined();
      }
      expect(store.database.inTransaction).toBe(false);
    });
  });

  describe("sweeper", () => {
    /** Claims `count` keys whose claims end and expire `expiresInMs` from the store's now. */
    async function seedExpired(store: SqliteStore, count: number, expiresInMs: number): Promise<void> {
      await Promise.all(
        Array.from({ length: count }, (_, i) =>
          store.claim(claimInput(`expired-${expiresInMs}-${i}`, { leaseMs: expiresInMs, expiresInMs })),
        ),
      );
    }

    it("sweeps on its timer in batches, reports each pass, and stops on close", async () => {
      vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
      const reports: SweepReport[] = [];
      let passDone: () => void = () => {};
      let now = t0;
      const store = open({
        sweepIntervalMs: 1_000,
        sweepBatchSize: 3,
        clock: { now: () => now },
        onSweep: (report) => {
          reports.push(report);
          passDone();
        },
      });
      await seedExpired(store, 10, 100);
      await store.claim(claimInput("live", { leaseMs: 100, expiresInMs: 1_000_000 }));
      now = t0 + 500;
      const firstPass = new Promise<void>((resolve) => (passDone = resolve));
      await vi.advanceTimersByTimeAsync(1_000);
      await firstPass;
      // 3 + 3 + 3 + 1: the short last batch tells the pass it is done.
      // Nothing past its replay window: one short statement ends the first stage.
      expect(reports).toEqual([{ deleted: 10, batches: 4, tombstoned: 0, tombstoneBatches: 1 }]);
      expect(store.database.prepare("SELECT key FROM connect_idempotency_records").pluck().all()).toEqual(["live"]);
      expect(vi.getTimerCount()).toBe(1);

      await store.close();
      expect(vi.getTimerCount()).toBe(0);
      await vi.advanceTimersByTimeAsync(5_000);
      expect(reports).toHaveLength(1);
    });

    it("reports a failed pass instead of dropping the error", async () => {
      vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
      let passDone: (report: SweepReport) => void = () => {};
      let now = t0;
      const store = open({ sweepIntervalMs: 1_000, clock: { now: () => now }, onSweep: (report) => passDone(report) });
      await seedExpired(store, 2, 100);
      now = t0 + 500;
      store.database.pragma("query_only = ON");
      const pass = new Promise<SweepReport>((resolve) => (passDone = resolve));
      await vi.advanceTimersByTimeAsync(1_000);
      expect(await pass).toMatchObject({ deleted: 0, batches: 0, error: { code: "SQLITE_READONLY" } });
    });

    it("lets other operations run between its batches", async () => {
      let now = t0;
      const store = open({ sweepBatchSize: 3, clock: { now: () => now } });
      await seedExpired(store, 10, 100);
      await store.claim(claimInput("live"));
      now = t0 + 500;
      const order: string[] = [];
      const sweep = store.sweep({ limit: 100 }).then((count) => order.push(`sweep:${count}`));
      const read = store.get(keyOf("live")).then((record) => order.push(`get:${record?.owner}`));
      await Promise.all([sweep, read]);
      expect(order).toEqual(["get:owner-live", "sweep:10"]);
      expect(store.executor.transactions).toBeGreaterThanOrEqual(4);
    });
  });

  describe("checkpoints", () => {
    it("leaves them to a worker thread, which copies the WAL into the file while the store stays open", async () => {
      const store = open();
      // The store's own connection checkpoints only as a backstop, far beyond SQLite's 1,000 pages.
      expect(store.database.pragma("wal_autocheckpoint", { simple: true })).toBe(4096);
      const file = join(dir, "records.db");
      const sizeBefore = statSync(file).size;
      for (let batch = 0; batch < 20; batch++) {
        await Promise.all(Array.from({ length: 100 }, (_, i) => store.claim(claimInput(`k${batch}-${i}`))));
      }
      // Commits only append to the WAL; the file grows when a checkpoint copies them in.
      await vi.waitFor(() => expect(statSync(file).size).toBeGreaterThan(sizeBefore + 100_000), { timeout: 5_000 });
      // The WAL is reused from its start once checkpointed, rather than growing with every write:
      // three times the writes that made it walBefore would leave it at about 4x without reuse.
      // Under 3x leaves room for a checkpoint that lags on a loaded machine.
      const walBefore = statSync(`${file}-wal`).size;
      for (let batch = 0; batch < 60; batch++) {
        await Promise.all(Array.from({ length: 100 }, (_, i) => store.claim(claimInput(`again${batch}-${i}`))));
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(statSync(`${file}-wal`).size).toBeLessThan(3 * walBefore);
      expect(connect().prepare("SELECT count(*) FROM connect_idempotency_records").pluck().get()).toBe(8000);
    });

    it("keeps the WAL bounded under writes that never pause", async () => {
      const store = open();
      const wal = join(dir, "records.db-wal");
      let largest = 0;
      // 64 writers back to back: every checkpoint of the worker finds new
      // commits behind it, so only the backstop lets the WAL start over.
      // Unbounded, 20,000 claims and completions leave 80 MB or more of WAL.
      let next = 0;
      const writer = async () => {
        while (next < 20_000) {
          next++;
          // Random like request IDs, so that each write lands on its own index page.
          const name = randomUUID();
          await store.claim(claimInput(name));
          await store.complete({
            key: keyOf(name),
            owner: `owner-${name}`,
            attempt: 1,
            outcome: new Uint8Array(64),
            retentionMs: 60_000,
          });
          if (next % 500 === 0) largest = Math.max(largest, statSync(wal).size);
        }
      };
      await Promise.all(Array.from({ length: 64 }, writer));
      largest = Math.max(largest, statSync(wal).size);
      // The backstop's 4,096 pages of 4 KB, plus what lands while it runs.
      expect(largest).toBeLessThan(32 * 1024 * 1024);
      expect(
        connect().prepare("SELECT count(*) FROM connect_idempotency_records WHERE status = 'completed'").pluck().get(),
      ).toBe(20_000);
    }, 60_000);

    it("gives checkpoints back to the connection when the worker cannot open the file", async () => {
      const db = connect();
      db.pragma("journal_mode = WAL");
      const checkpointer = startSqliteCheckpointer(db, join(dir, "not-there", "records.db"));
      expect(db.pragma("wal_autocheckpoint", { simple: true })).toBe(4096);
      await vi.waitFor(() => expect(db.pragma("wal_autocheckpoint", { simple: true })).toBe(1000), { timeout: 5_000 });
      await checkpointer.stop();
    });

    it("lets go of the file on close, so that the last connection removes the WAL", async () => {
      const store = open();
      await store.claim(claimInput("a"));
      await store.close();
      expect(existsSync(join(dir, "records.db-wal"))).toBe(false);
      expect(connect().prepare("SELECT key FROM connect_idempotency_records").pluck().all()).toEqual(["a"]);
    });
  });

  describe("several processes on one file", () => {
    const children: ChildProcessByStdio<Writable, Readable, null>[] = [];

    afterEach(() => {
      for (const child of children.splice(0)) {
        if (child.exitCode === null) child.kill();
      }
    });

    function startWorker(args: readonly string[]): ChildProcessByStdio<Writable, Readable, null> {
      const child = spawn(process.execPath, ["--import", "tsx", workerPath, join(dir, "records.db"), ...args], {
        cwd: repoRoot,
        stdio: ["pipe", "pipe", "inherit"],
      });
      children.push(child);
      return child;
    }

    function readLines(child: ChildProcessByStdio<Writable, Readable, null>): {
      next(): Promise<string>;
      exit: Promise<number | null>;
    } {
      const lines: string[] = [];
      const waiting: ((line: string) => void)[] = [];
      let buffered = "";
      child.stdout.setEncoding("utf8");
      child.stdout.on("data", (chunk: string) => {
        buffered += chunk;
        for (let newline = buffered.indexOf("\n"); newline >= 0; newline = buffered.indexOf("\n")) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          const waiter = waiting.shift();
          if (waiter !== undefined) waiter(line);
          else lines.push(line);
        }
      });
      const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
      return {
        next: () => {
          const line = lines.shift();
          if (line !== undefined) return Promise.resolve(line);
          return Promise.race([
            new Promise<string>((resolve) => waiting.push(resolve)),
            exit.then((code) => Promise.reject(new Error(`worker exited with ${code} before writing a line`))),
          ]);
        },
        exit,
      };
    }

    it("lets exactly one claim per key win across processes", async () => {
      await open().close();
      const keyCount = 300;
      const workers = ["1", "2", "3"].map((id) => {
        const child = startWorker(["claim", id, String(keyCount)]);
        return { id, child, lines: readLines(child) };
      });
      for (const worker of workers) expect(await worker.lines.next()).toBe("ready");
      // Released together, so that the claims overlap.
      for (const worker of workers) worker.child.stdin.end("go\n");
      const outputs = await Promise.all(
        workers.map(async (worker) => {
          const output = JSON.parse(await worker.lines.next()) as { claimed: string[]; existing: number };
          expect(await worker.lines.exit).toBe(0);
          return { id: worker.id, ...output };
        }),
      );
      const claimedBy = new Map<string, string>();
      for (const output of outputs) {
        expect(output.claimed.length + output.existing).toBe(keyCount);
        for (const key of output.claimed) {
          expect(claimedBy.get(key)).toBeUndefined();
          claimedBy.set(key, output.id);
        }
      }
      expect(claimedBy.size).toBe(keyCount);
      const store = open();
      for (const [key, id] of claimedBy) {
        const record = await store.get({ scope: "shared", method: "fixture.v1.FixtureService/Plain", key });
        expect(record?.status).toBe("completed");
        expect(record?.owner).toBe(`worker-${id}`);
        expect(new TextDecoder().decode(record?.outcome)).toBe(`worker-${id}`);
      }
    });

    it("never keeps a process alive: the sweeper's timer is unref'd", async () => {
      const child = startWorker(["idle"]);
      child.stdin.end();
      expect(await readLines(child).exit).toBe(0);
      expect(connect().prepare("SELECT owner FROM connect_idempotency_records").pluck().all()).toEqual(["idle"]);
    });
  });
});
