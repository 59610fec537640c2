import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RecordSummary } from "../../src/store/idempotency-store-admin.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { runCli } from "../support/run-cli.js";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const method = "fixture.v1.FixtureService/Opaque";
// ESC starts a colour, U+009B is a one-byte CSI, U+202E reverses what follows.
const hostileScope = "acme\u001b[31mred\u009b2J\u202eevil";
const hostileKey = "k\u0007ey";
// What a terminal must never receive raw.
// biome-ignore-start lint/suspicious/noControlCharactersInRegex: matching them is the point.
const raw = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
// biome-ignore-end lint/suspicious/noControlCharactersInRegex: see above.

let dir: string;
let db: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "admin-cli-hardening-"));
  db = join(dir, "store.db");
  const store = createSqliteStore({ path: db, sweepIntervalMs: 0 });
  for (const [scope, key, complete] of [
    [hostileScope, "k-1", true],
    ["plain", hostileKey, true],
    [hostileScope, "running", false],
  ] as const) {
    const owner = `owner-${key}`;
    await store.claim({
      key: { scope, method, key },
      fingerprint: "fp",
      owner,
      leaseMs: 600_000,
      graceMs: 1_000,
      expiresInMs: 3_600_000,
    });
    if (complete) {
      await store.complete({
        key: { scope, method, key },
        owner,
        attempt: 1,
        outcome: new Uint8Array(0),
        retentionMs: 3_600_000,
      });
    }
  }
  await store.close();
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Starts a process that takes the write lock of `path` and lets go after `holdMs`. */
/**
 * A process holding the file's write lock until `release` (or `holdMs`):
 * released on cue, so that a slow CLI start on a loaded machine cannot
 * outlast the lock the test means it to meet.
 */
async function holdLock(path: string, holdMs: number): Promise<ChildProcess & { release(): void }> {
  const holder = spawn(
    process.execPath,
    [
      "-e",
      `const db = new (require("better-sqlite3"))(${JSON.stringify(path)});
       db.exec("BEGIN EXCLUSIVE"); console.log("locked");
       const release = () => { if (db.open) { db.exec("ROLLBACK"); db.close(); } process.exit(0); };
       process.stdin.once("data", release);
       setTimeout(release, ${holdMs});`,
    ],
    { cwd: repoRoot, stdio: ["pipe", "pipe", "inherit"] },
  );
  await new Promise((resolve) => holder.stdout!.once("data", resolve));
  return Object.assign(holder, { release: () => holder.stdin!.end("release\n") });
}

describe("stored text on a terminal", () => {
  it("escapes control and bidirectional characters in tables, records, stats and JSON", async () => {
    const [list, show, stats, json] = await Promise.all([
      runCli(["keys", "list", "--db", db]),
      runCli(["keys", "show", "k-1", "--db", db]),
      runCli(["stats", "--db", db]),
      runCli(["keys", "list", "--json", "--db", db]),
    ]);
    for (const run of [list, show, stats, json]) {
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).not.toMatch(raw);
    }
    const quoted = '"acme\\u001b[31mred\\u009b2J\\u202eevil"';
    expect(list.stdout).toContain(quoted);
    expect(list.stdout).toContain('"k\\u0007ey"');
    expect(show.stdout).toContain(`scope        ${quoted}`);
    expect(stats.stdout).toContain(`oldest in progress: "running" of ${method} in scope ${quoted}`);
    // JSON still round-trips to the stored strings.
    const records = JSON.parse(json.stdout) as RecordSummary[];
    expect(records.map((r) => r.scope).sort()).toEqual([hostileScope, hostileScope, "plain"].sort());
    expect(records.map((r) => r.key)).toContain(hostileKey);
  });

  it("escapes them in error messages too", async () => {
    const run = await runCli(["keys", "show", "k-1", "--scope", "no\u001b]0;title\u0007such\u202e", "--db", db]);
    expect(run.code).toBe(2);
    expect(run.stderr).not.toMatch(raw);
    expect(run.stderr).toBe(
      `connect-idempotency: no record with request ID "k-1" in scope "no\\u001b]0;title\\u0007such\\u202e"\n`,
    );
  });
});

describe("--db naming a directory", () => {
  it("says that it is a directory and which database files it holds", async () => {
    const run = await runCli(["stats", "--db", dir]);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe(
      `connect-idempotency: --db ${dir} is a directory: pass the SQLite file of the store, such as ${join(dir, "idempotency.db")}; it holds ${db}\n`,
    );
  });
});

describe("writes under another process's lock", () => {
  it("give up after --wait with a message naming the lock and its holder, and succeed when the wait outlasts the lock", async () => {
    const holder = await holdLock(db, 120_000);
    try {
      const started = performance.now();
      const [sweep, evict] = await Promise.all([
        runCli(["sweep", "--db", db, "--wait", "300"]),
        runCli(["keys", "evict", "k-1", "--scope", hostileScope, "--yes", "--db", db, "--wait", "300ms"]),
      ]);
      const tookMs = performance.now() - started;
      for (const run of [sweep, evict]) {
        expect(run.code).toBe(1);
        expect(run.stderr).toMatch(
          new RegExp(
            `^connect-idempotency: the SQLite file ${db} is locked: another connection held its write lock for longer than 300 ms; ` +
              `process ${holder.pid} \\(.*\\) holds it; nothing was changed: run it again once the lock is free, or wait longer with --wait <ms>\\n$`,
          ),
        );
      }
      // Reads never wait for the writer.
      const list = await runCli(["keys", "list", "--json", "--db", db]);
      expect(JSON.parse(list.stdout)).toHaveLength(3);
      console.log(`sweep and evict under the lock gave up after ${tookMs.toFixed(0)} ms (two CLI starts in parallel)`);
      const waiting = runCli(["sweep", "--json", "--db", db, "--wait", "30s"]);
      setTimeout(() => holder.release(), 2_000);
      const waited = await waiting;
      expect(waited.code, waited.stderr).toBe(0);
      expect(JSON.parse(waited.stdout)).toEqual({ deleted: 0 });
    } finally {
      holder.kill();
    }
  });

  it("refuses a --wait it cannot read, and --wait with --postgres", async () => {
    const [bad, postgres] = await Promise.all([
      runCli(["sweep", "--db", db, "--wait", "soon"]),
      runCli(["sweep", "--postgres", "postgres://postgres@127.0.0.1:5432/test", "--wait", "100"]),
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("expected milliseconds, such as 30000, or a duration such as 30s or 2m");
    expect(postgres.code).toBe(2);
    expect(postgres.stderr).toContain("--wait applies to --db only");
  });
});
