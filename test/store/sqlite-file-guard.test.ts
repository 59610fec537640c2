import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, renameSync, rmSync, statSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ClaimInput, RecordKey } from "../../src/store/idempotency-store.js";
import { sqliteFileCheckIntervalMs } from "../../src/store/sqlite/sqlite-file-guard.js";
import {
  createSqliteStore,
  type SqliteStore,
  type SqliteStoreOptions,
  type SqliteStoreProblem,
} from "../../src/store/sqlite/sqlite-store.js";

const canChattr = process.getuid?.() === 0 && spawnSync("chattr", ["--help"]).error === undefined;
const method = "fixture.v1.FixtureService/Opaque";

let dir: string;
let path: string;
const opened: SqliteStore[] = [];
const connections: Database.Database[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "sqlite-file-guard-"));
  path = join(dir, "idem.db");
});

afterEach(async () => {
  if (canChattr) spawnSync("chattr", ["-R", "-i", dir]);
  for (const db of connections.splice(0)) db.close();
  await Promise.all(opened.splice(0).map((store) => store.close()));
  rmSync(dir, { recursive: true, force: true });
});

function open(options: Partial<SqliteStoreOptions> = {}): { store: SqliteStore; problems: SqliteStoreProblem[] } {
  const problems: SqliteStoreProblem[] = [];
  const store = createSqliteStore({ path, sweepIntervalMs: 0, onProblem: (p) => problems.push(p), ...options });
  opened.push(store);
  return { store, problems };
}

const keyOf = (id: string): RecordKey => ({ scope: "", method, key: id });
const claimInput = (id: string): ClaimInput => ({
  key: keyOf(id),
  fingerprint: "fp",
  owner: `owner-${id}`,
  leaseMs: 30_000,
  graceMs: 1_000,
  expiresInMs: 3_600_000,
});

async function completeKeys(store: SqliteStore, ids: readonly string[], outcomeBytes = 10): Promise<void> {
  for (const id of ids) {
    const claim = await store.claim(claimInput(id));
    expect(claim.kind).toBe("claimed");
    await store.complete({
      key: keyOf(id),
      owner: `owner-${id}`,
      attempt: 1,
      outcome: new Uint8Array(outcomeBytes),
      retentionMs: 3_600_000,
    });
  }
}

/** Lets the guard look at the files again. */
const nextCheck = () => delay(sqliteFileCheckIntervalMs + 10);

describe("a store whose file is deleted or replaced under it", () => {
  it.each([
    ["the database file and its -wal and -shm", ["", "-wal", "-shm"], "idem.db is gone"],
    ["the database file alone", [""], "idem.db is gone"],
    // SQLite may create a new -wal by then.
    ["the -wal alone", ["-wal"], "idem.db-wal is (gone|another file now)"],
  ])(
    "refuses every operation, replays included, once %s is deleted, and reports it once",
    async (_, suffixes, what) => {
      const { store, problems } = open();
      await completeKeys(store, ["a", "b"]);
      for (const suffix of suffixes) rmSync(path + suffix);
      await nextCheck();
      const refused = await Promise.allSettled([
        store.claim(claimInput("a")),
        store.claim(claimInput("new")),
        store.get(keyOf("b")),
      ]);
      for (const operation of refused) {
        expect(operation).toMatchObject({
          status: "rejected",
          reason: { code: "ERR_CONNECT_IDEMPOTENCY_SQLITE_FILE_LOST" },
        });
        expect((operation as PromiseRejectedResult).reason.message).toMatch(
          new RegExp(
            `the SQLite file ${path} was deleted or replaced while the store had it open \\(${join(dir, what)}\\); ` +
              "the store refuses every operation",
          ),
        );
      }
      // The background checkpoints of the deleted file may fail too (SQLITE_READONLY_DBMOVED).
      expect(problems.filter((p) => p.kind !== "checkpoint_failed")).toEqual([
        { kind: "file_lost", path, message: expect.stringContaining("Restart with the original file") },
      ]);
    },
  );

  it("refuses every operation once another file takes its name, and a new store there starts empty", async () => {
    const { store, problems } = open();
    await completeKeys(store, ["a"]);
    // As a restore of a backup with `mv` would.
    copyFileSync(path, join(dir, "copy.db"));
    renameSync(join(dir, "copy.db"), path);
    await nextCheck();
    await expect(store.claim(claimInput("a"))).rejects.toThrow(/idem\.db is another file now/);
    expect(problems.filter((p) => p.kind === "file_lost")).toHaveLength(1);
  });

  it("lets closing it leave a new store's files alone", async () => {
    const { store } = open();
    await completeKeys(store, ["a"]);
    for (const suffix of ["", "-wal", "-shm"]) rmSync(path + suffix);
    const fresh = createSqliteStore({ path, sweepIntervalMs: 0 });
    await completeKeys(fresh, ["b"]);
    await nextCheck();
    await expect(store.get(keyOf("a"))).rejects.toThrow(/was deleted or replaced/);
    await store.close();
    // SQLite's last close of the deleted file removed no -wal by name.
    expect((await fresh.get(keyOf("b")))?.status).toBe("completed");
    await fresh.close();
    const reopened = open().store;
    expect((await reopened.get(keyOf("b")))?.status).toBe("completed");
    expect(await reopened.get(keyOf("a"))).toBeUndefined();
  });
});

describe("the write-ahead log limit", () => {
  it("refuses writes past maxWalBytes while a reader holds checkpoints back, answers replays, and resumes once it can truncate", async () => {
    const { store, problems } = open({ maxWalBytes: 1 << 20 });
    await completeKeys(store, ["done"]);
    // A reader that never ends: no checkpoint may pass its snapshot.
    const reader = new Database(path);
    connections.push(reader);
    reader.exec("BEGIN");
    reader.prepare("SELECT count(*) FROM connect_idempotency_records").get();
    let written = 0;
    let refusal: unknown;
    // Bounded: 1 MiB of WAL is a few hundred of these.
    for (; written < 5_000; written++) {
      try {
        await completeKeys(store, [`k-${written}`], 2_000);
        if (written % 20 === 0) await nextCheck();
      } catch (error) {
        refusal = error;
        break;
      }
    }
    expect(refusal).toMatchObject({
      code: "ERR_CONNECT_IDEMPOTENCY_SQLITE_WAL_LIMIT",
      message: expect.stringMatching(
        /write-ahead log .*idem\.db-wal has grown to [\d.]+ MiB, past maxWalBytes \(1\.0 MiB\)/,
      ),
    });
    expect(statSync(`${path}-wal`).size).toBeLessThan(8 << 20);
    expect(problems.filter((p) => p.kind === "wal_limit")).toHaveLength(1);
    // A replay needs no write.
    expect(await store.claim(claimInput("done"))).toMatchObject({ kind: "existing", record: { status: "completed" } });
    expect((await store.get(keyOf("done")))?.status).toBe("completed");
    await expect(store.claim(claimInput("new"))).rejects.toMatchObject({
      code: "ERR_CONNECT_IDEMPOTENCY_SQLITE_WAL_LIMIT",
    });

    reader.exec("COMMIT");
    // The next look (at most a second later) checkpoints and truncates the WAL.
    await vi.waitFor(async () => expect((await store.claim(claimInput("new"))).kind).toBe("claimed"), {
      timeout: 3_000,
      interval: 100,
    });
    expect(statSync(`${path}-wal`).size).toBeLessThan(1 << 20);
  });

  it.skipIf(!canChattr)(
    "reports failing checkpoints of a file made immutable, and stops the WAL at its limit",
    async () => {
      const { store, problems } = open({ maxWalBytes: 2 << 20 });
      await completeKeys(store, ["done"]);
      execFileSync("chattr", ["+i", path]);
      let refusal: unknown;
      for (let i = 0; i < 5_000 && refusal === undefined; i++) {
        await completeKeys(store, [`k-${i}`], 2_000).catch((error: unknown) => (refusal = error));
        if (i % 20 === 0) await nextCheck();
      }
      expect(refusal).toMatchObject({
        code: "ERR_CONNECT_IDEMPOTENCY_SQLITE_WAL_LIMIT",
        message: expect.stringContaining("because checkpoints fail: SQLITE_IOERR_WRITE: disk I/O error"),
      });
      await vi.waitFor(() => expect(problems.map((p) => p.kind)).toContain("checkpoint_failed"), { timeout: 2_000 });
      expect(problems.find((p) => p.kind === "checkpoint_failed")?.message).toMatch(
        /checkpoints of the SQLite file .*idem\.db fail \(\d+ in a row\): SQLITE_IOERR_WRITE: disk I\/O error; the write-ahead log grows/,
      );
      expect(await store.claim(claimInput("done"))).toMatchObject({ kind: "existing" });

      execFileSync("chattr", ["-i", path]);
      await vi.waitFor(async () => expect((await store.claim(claimInput("after"))).kind).toBe("claimed"), {
        timeout: 3_000,
        interval: 100,
      });
    },
  );

  it("warns through process.emitWarning when nobody listens", async () => {
    const warnings: Error[] = [];
    const listener = (warning: Error) => warnings.push(warning);
    process.on("warning", listener);
    try {
      const store = createSqliteStore({ path, sweepIntervalMs: 0 });
      opened.push(store);
      await completeKeys(store, ["a"]);
      rmSync(path);
      await nextCheck();
      await expect(store.get(keyOf("a"))).rejects.toThrow(/deleted or replaced/);
      await vi.waitFor(() =>
        expect(warnings.map((w) => (w as { code?: string }).code)).toEqual(["CONNECT_IDEMPOTENCY_SQLITE_FILE_LOST"]),
      );
    } finally {
      process.off("warning", listener);
    }
  });
});
