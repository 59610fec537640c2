// A child process for the SQLite multi-process tests, run with
// `node --import tsx test/support/sqlite-claim-worker.ts <path> <mode> ...`.
//
// - `claim <worker> <keyCount>`: prints "ready", waits for "go" on stdin,
//   claims keys 0..keyCount-1 (16 at a time) and completes those it won, then
//   prints `{"claimed": [...], "existing": n}` and closes the store.
// - `idle`: opens a store with a background sweeper, claims one key and never
//   closes it; the process must still exit on its own.
import { createInterface } from "node:readline";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";

const [path, mode, worker, keyCountArg] = process.argv.slice(2);
if (path === undefined) throw new Error("usage: sqlite-claim-worker.ts <path> claim|idle ...");
const method = "fixture.v1.FixtureService/Plain";

if (mode === "idle") {
  const store = createSqliteStore({ path, sweepIntervalMs: 60_000 });
  await store.claim({
    key: { scope: "idle", method, key: "idle" },
    fingerprint: "fp",
    owner: "idle",
    leaseMs: 1,
    graceMs: 0,
    expiresInMs: 2,
  });
} else if (mode === "claim" && worker !== undefined && keyCountArg !== undefined) {
  const store = createSqliteStore({ path, sweepIntervalMs: 0, busyTimeoutMs: 30_000 });
  const lines = createInterface({ input: process.stdin });
  const go = new Promise<void>((resolve) => lines.on("line", (line) => line === "go" && resolve()));
  process.stdout.write("ready\n");
  await go;
  lines.close();
  const claimed: string[] = [];
  let existing = 0;
  const keyCount = Number(keyCountArg);
  for (let start = 0; start < keyCount; start += 16) {
    const keys = Array.from({ length: Math.min(16, keyCount - start) }, (_, i) => `key-${start + i}`);
    await Promise.all(
      keys.map(async (id) => {
        const key = { scope: "shared", method, key: id };
        const owner = `worker-${worker}`;
        const result = await store.claim({
          key,
          fingerprint: "fp",
          owner,
          leaseMs: 60_000,
          graceMs: 10_000,
          expiresInMs: 3_600_000,
        });
        if (result.kind === "existing") {
          existing++;
          return;
        }
        claimed.push(id);
        const { attempt } = result.record;
        const done = await store.complete({
          key,
          owner,
          attempt,
          outcome: new TextEncoder().encode(owner),
          retentionMs: 3_600_000,
        });
        if (!done) throw new Error(`worker ${worker} lost its claim on ${id}`);
      }),
    );
  }
  await store.close();
  process.stdout.write(`${JSON.stringify({ claimed, existing })}\n`);
} else {
  throw new Error(`unknown mode ${String(mode)}`);
}
