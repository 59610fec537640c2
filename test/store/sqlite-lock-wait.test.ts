import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FixtureService } from "../../gen/fixture/v1/fixture_pb.js";
import { findErrorReason } from "../../src/errors/idempotency-error.js";
import type { ClaimInput, RecordKey } from "../../src/store/idempotency-store.js";
import { findSqliteLockHolder } from "../../src/store/sqlite/sqlite-lock-holder.js";
import { createSqliteStore, type SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { startServerProcess } from "../support/server-process.js";
import { createTestTransport } from "../support/test-transports.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const method = "fixture.v1.FixtureService/Opaque";
const keyOf = (id: string): RecordKey => ({ scope: "", method, key: id });
const claimInput = (id: string): ClaimInput => ({
  key: keyOf(id),
  fingerprint: "fp",
  owner: `owner-${id}`,
  leaseMs: 30_000,
  graceMs: 1_000,
  expiresInMs: 3_600_000,
});

/** Starts a process that takes the write lock of `path` (BEGIN EXCLUSIVE) and lets go after `holdMs`. */
async function holdLock(path: string, holdMs: number): Promise<ChildProcess> {
  const holder = spawn(
    process.execPath,
    [
      "-e",
      `const db = new (require("better-sqlite3"))(${JSON.stringify(path)});
       db.exec("BEGIN EXCLUSIVE"); console.log("locked");
       setTimeout(() => { db.exec("ROLLBACK"); db.close(); }, ${holdMs});`,
    ],
    { cwd: repoRoot, stdio: ["ignore", "pipe", "inherit"] },
  );
  await new Promise((resolve) => holder.stdout!.once("data", resolve));
  return holder;
}

/** The longest the event loop went without running a 5 ms timer while `run` ran. */
async function longestStall<T>(run: () => Promise<T>): Promise<{ value: T; stallMs: number }> {
  let last = performance.now();
  let stallMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last);
    last = now;
  }, 5);
  try {
    return { value: await run(), stallMs };
  } finally {
    clearInterval(timer);
  }
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;
}

describe("another process holding the write lock", () => {
  let dir: string;
  let path: string;
  const opened: SqliteStore[] = [];
  const holders: ChildProcess[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "sqlite-lock-wait-"));
    path = join(dir, "idem.db");
  });

  afterEach(async () => {
    for (const holder of holders.splice(0)) holder.kill();
    await Promise.all(opened.splice(0).map((store) => store.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  function open(busyTimeoutMs: number): SqliteStore {
    const store = createSqliteStore({ path, sweepIntervalMs: 0, busyTimeoutMs });
    opened.push(store);
    return store;
  }

  async function completed(store: SqliteStore, id: string): Promise<void> {
    await store.claim(claimInput(id));
    await store.complete({
      key: keyOf(id),
      owner: `owner-${id}`,
      attempt: 1,
      outcome: new Uint8Array([7]),
      retentionMs: 3_600_000,
    });
  }

  it("waits for the lock without blocking the event loop, and answers replays and reads from reads meanwhile", async () => {
    const store = open(5_000);
    await completed(store, "done");
    await store.claim(claimInput("running"));
    holders.push(await holdLock(path, 1_500));
    const started = performance.now();
    const { value, stallMs } = await longestStall(async () => {
      const claimOfNew = store.claim(claimInput("new")).then((claim) => ({ claim, ms: performance.now() - started }));
      const replay = await store.claim(claimInput("done"));
      const replayMs = performance.now() - started;
      const duplicate = await store.claim({ ...claimInput("running"), owner: "someone-else" });
      const read = await store.get(keyOf("done"));
      return { replay, replayMs, duplicate, read, readMs: performance.now() - started, ...(await claimOfNew) };
    });
    console.log(
      `lock held 1500 ms: replay ${value.replayMs.toFixed(1)} ms, read ${value.readMs.toFixed(1)} ms, ` +
        `claim of a new key ${value.ms.toFixed(0)} ms, longest event loop stall ${stallMs.toFixed(1)} ms`,
    );
    // The same answers the upsert gives, without the write lock.
    expect(value.replay).toMatchObject({
      kind: "existing",
      record: { status: "completed", outcome: new Uint8Array([7]) },
    });
    expect(value.duplicate).toMatchObject({
      kind: "existing",
      record: { status: "in_progress", owner: "owner-running" },
    });
    expect(value.read?.status).toBe("completed");
    // Loose bounds, far from the lock time: no assertion on speed itself.
    expect(value.readMs).toBeLessThan(750);
    expect(stallMs).toBeLessThan(750);
    // The write waited for the lock and then went through.
    expect(value.claim.kind).toBe("claimed");
    expect(value.ms).toBeGreaterThan(1_000);
    expect(store.executor.busyWaits).toBeGreaterThan(0);
  });

  it("gives up after busyTimeoutMs with SQLITE_BUSY and a message naming the lock and its holder", async () => {
    const store = open(300);
    await completed(store, "done");
    const holder = await holdLock(path, 3_000);
    holders.push(holder);
    expect(findSqliteLockHolder(path)?.pid).toBe(holder.pid);
    const { value, stallMs } = await longestStall(() =>
      store.claim(claimInput("new")).catch((error: unknown) => error),
    );
    expect(value).toMatchObject({
      code: "SQLITE_BUSY",
      message: expect.stringMatching(
        new RegExp(
          `the SQLite file .*idem\\.db is locked: another connection has held its write lock for \\d+ ms, longer than busyTimeoutMs \\(300 ms\\); process ${holder.pid} \\(.*node.*\\) holds it`,
        ),
      ),
    });
    expect(stallMs).toBeLessThan(250);
    expect(await store.claim(claimInput("done"))).toMatchObject({ kind: "existing" });
  });

  it("keeps a server's unrelated calls and replays fast while another process holds the lock for 3 s", async () => {
    const scratchPath = path;
    const server = await startServerProcess({
      script: fileURLToPath(new URL("../support/sqlite-fixture-server.ts", import.meta.url)),
      env: { SQLITE_PATH: scratchPath, BUSY_TIMEOUT_MS: "1000" },
    });
    try {
      const client = createClient(
        FixtureService,
        createTestTransport(server.baseUrl, { protocol: "connect", binary: true, gzip: false }),
      );
      await client.opaque({ key: "old", text: "t" });
      holders.push(await holdLock(scratchPath, 3_000));
      const lockedAt = performance.now();
      const latencies: Record<"replay" | "plain" | "new", number[]> = { replay: [], plain: [], new: [] };
      const results: Record<string, number> = {};
      const timed = async (kind: keyof typeof latencies, call: () => Promise<unknown>) => {
        const sent = performance.now();
        let result: string;
        try {
          await call();
          result = "ok";
        } catch (error) {
          const connectError = ConnectError.from(error);
          result = `${Code[connectError.code]} ${findErrorReason(connectError)}`;
        }
        latencies[kind].push(performance.now() - sent);
        results[`${kind} ${result}`] = (results[`${kind} ${result}`] ?? 0) + 1;
      };
      const calls: Promise<void>[] = [];
      // Bounded: 20 rounds, 100 ms apart, all inside the 3 s lock.
      for (let round = 0; round < 20; round++) {
        calls.push(timed("replay", () => client.opaque({ key: "old", text: "t" })));
        calls.push(timed("plain", () => client.plain({ text: "p" })));
        if (round % 5 === 0) calls.push(timed("new", () => client.opaque({ key: `new-${round}`, text: "t" })));
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await Promise.all(calls);
      const sentFor = performance.now() - lockedAt;
      const figures = (["replay", "plain", "new"] as const)
        .map(
          (kind) =>
            `${kind} p50 ${percentile(latencies[kind], 50).toFixed(1)} ms max ${Math.max(...latencies[kind]).toFixed(1)} ms`,
        )
        .join("; ");
      console.log(
        `lock held 3000 ms, calls sent over ${sentFor.toFixed(0)} ms: ${figures}; ${JSON.stringify(results)}`,
      );
      expect(results["replay ok"]).toBe(20);
      expect(results["plain ok"]).toBe(20);
      // New keys need the lock: they wait busyTimeoutMs and fail closed.
      expect(results["new Unavailable STORE_UNAVAILABLE"]).toBeGreaterThan(0);
      // Loose bounds, well under the 3 s lock and the 1 s busy timeout.
      expect(Math.max(...latencies.replay)).toBeLessThan(900);
      expect(Math.max(...latencies.plain)).toBeLessThan(900);
    } finally {
      await server.kill();
    }
  });
});
