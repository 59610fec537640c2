import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createSqliteStore, type SqliteStoreOptions } from "../../src/store/sqlite/sqlite-store.js";

// Root ignores file modes, but not the immutable flag; both are tried where
// the machine allows.
const isRoot = process.getuid?.() === 0;
const canChattr = isRoot && spawnSync("chattr", ["--help"]).error === undefined;

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "sqlite-store-opening-"));
});

afterEach(() => {
  if (canChattr) spawnSync("chattr", ["-R", "-i", dir]);
  rmSync(dir, { recursive: true, force: true });
});

/** Creates a store file with one table, then closes it (the WAL is checkpointed and removed). */
async function existingStore(path: string): Promise<void> {
  await createSqliteStore({ path, sweepIntervalMs: 0 }).close();
}

describe("createSqliteStore options", () => {
  it.each([
    ["undefined", undefined],
    ["an empty string", ""],
    ["blanks", "  "],
  ])("refuses a path that is %s, instead of opening a private database", (_, path) => {
    expect(() => createSqliteStore({ path: path as string })).toThrow(
      /createSqliteStore: path must name the database file.*pass a file path, or ":memory:" explicitly/,
    );
  });

  it("still opens :memory: when asked for explicitly", async () => {
    const store = createSqliteStore({ path: ":memory:", sweepIntervalMs: 0 });
    expect(store.database.memory).toBe(true);
    expect(store.blockingWaitMs).toBe(0);
    await store.close();
  });

  it("refuses unknown option names and names the known ones", () => {
    const misspelt = {
      path: join(dir, "a.db"),
      busyTimeout: 100,
      durabilityMode: "full",
    } as unknown as SqliteStoreOptions;
    expect(() => createSqliteStore(misspelt)).toThrow(
      /unknown options "busyTimeout", "durabilityMode"; the options are path, durability, busyTimeoutMs,/,
    );
  });

  it("refuses values out of range before touching the file", () => {
    const path = join(dir, "never.db");
    expect(() => createSqliteStore({ path, busyTimeoutMs: -1 })).toThrow(
      /busyTimeoutMs must be a number of at least 0/,
    );
    expect(() => createSqliteStore({ path, maxWalBytes: 0 })).toThrow(/maxWalBytes must be a number of at least 1/);
    expect(() => createSqliteStore({ path, onProblem: "warn" as never })).toThrow(/onProblem must be a function/);
    expect(spawnSync("test", ["-e", path]).status).toBe(1);
  });
});

describe("opening the file", () => {
  it("says so when the path is a directory", () => {
    expect(() => createSqliteStore({ path: dir })).toThrow(
      new RegExp(`path ${dir} is a directory; pass the database file, such as ${dir}/idempotency.db`),
    );
  });

  it.skipIf(!canChattr)("refuses an immutable file at open, instead of refusing every call later", async () => {
    const path = join(dir, "idem.db");
    await existingStore(path);
    execFileSync("chattr", ["+i", path]);
    expect(() => createSqliteStore({ path })).toThrow(
      /cannot open the SQLite file .*idem\.db for writing \(SQLITE_READONLY: attempt to write a readonly database\); the store must write the file, its -wal and -shm files.*lsattr/,
    );
  });

  it.skipIf(!canChattr)("refuses a file whose directory cannot hold its -wal and -shm files", async () => {
    const path = join(dir, "idem.db");
    await existingStore(path);
    execFileSync("chattr", ["+i", dir]);
    expect(() => createSqliteStore({ path })).toThrow(
      /cannot open the SQLite file .*idem\.db for writing \(SQLITE_CANTOPEN/,
    );
  });

  it.skipIf(!isRoot)("refuses a file of mode 444 for a user that may not write it", async () => {
    const sub = join(dir, "shared");
    mkdirSync(sub);
    chmodSync(dir, 0o755);
    chmodSync(sub, 0o777);
    const path = join(sub, "idem.db");
    await existingStore(path);
    chmodSync(path, 0o444);
    // The same check, run by a process that may read the file but not write
    // it: root without the capabilities that override file modes. (Not as
    // another user: a fresh clone in a 0700 directory is unreadable to it.)
    const script = `
      import { createSqliteStore } from ${JSON.stringify(new URL("../../src/store/sqlite/sqlite-store.ts", import.meta.url).pathname)};
      try { createSqliteStore({ path: ${JSON.stringify(path)} }); console.log("opened"); } catch (e) { console.log(e.message); }`;
    const run = spawnSync(
      "setpriv",
      [
        "--bounding-set=-dac_override,-dac_read_search",
        "--inh-caps=-all",
        process.execPath,
        "--import",
        "tsx",
        "--input-type=module",
        "-e",
        script,
      ],
      { cwd: new URL("../..", import.meta.url).pathname, encoding: "utf8" },
    );
    expect(run.stdout).toMatch(/cannot open the SQLite file .*idem\.db for writing \(SQLITE_READONLY/);
    // It was readable all along.
    const reader = new Database(path, { readonly: true });
    expect(reader.prepare("SELECT count(*) FROM connect_idempotency_meta").pluck().get()).toBe(1);
    reader.close();
  });
});
