// Claims plus completions per second of the SQLite store alone, with each
// durability and with group commit on and off: what group commit buys.
//
//   npx tsx bench/store-throughput.ts [--concurrency 64] [--duration-ms 2000]
//
// The end-to-end benchmark (`npm run bench`) measures the store behind a
// real server; this one isolates the store.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createSqliteStore, type SqliteDurability } from "../src/store/sqlite/sqlite-store.js";

const { values } = parseArgs({
  options: {
    concurrency: { type: "string", default: "64" },
    "duration-ms": { type: "string", default: "2000" },
  },
});
const concurrency = Number(values.concurrency);
const durationMs = Number(values["duration-ms"]);
const warmupMs = 300;

interface Figures {
  readonly durability: SqliteDurability;
  readonly groupCommit: boolean;
  readonly pairsPerSecond: number;
  readonly operationsPerTransaction: number;
  /** Less sensitive than throughput to other processes competing for the CPU. */
  readonly cpuMicrosPerPair: number;
}

async function measure(durability: SqliteDurability, groupCommit: boolean): Promise<Figures> {
  const dir = await mkdtemp(join(tmpdir(), "connect-idempotency-store-bench-"));
  const store = createSqliteStore({ path: join(dir, "records.db"), durability, groupCommit, sweepIntervalMs: 0 });
  try {
    const method = "demo.v1.PaymentService/CreatePayment";
    const outcome = new Uint8Array(200).fill(7);
    let next = 0;
    let pairs = 0;
    let measuring = false;
    let stop = false;
    async function worker(): Promise<void> {
      while (!stop) {
        const now = Date.now();
        const key = { scope: "bench", method, key: `key-${next++}` };
        const owner = `owner-${next}`;
        const result = await store.claim({
          key,
          fingerprint: "fp",
          owner,
          now,
          leaseUntil: now + 30_000,
          expiresAt: now + 86_400_000,
        });
        if (result.kind !== "claimed") throw new Error(`fresh key ${key.key} was not claimed`);
        if (!(await store.complete({ key, owner, outcome, now, expiresAt: now + 86_400_000 }))) {
          throw new Error(`lost the claim on ${key.key}`);
        }
        if (measuring) pairs++;
      }
    }
    const workers = Array.from({ length: concurrency }, () => worker());
    await new Promise((resolve) => setTimeout(resolve, warmupMs));
    const transactionsBefore = store.executor.transactions;
    const jobsBefore = store.executor.jobs;
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    measuring = true;
    await new Promise((resolve) => setTimeout(resolve, durationMs));
    measuring = false;
    const elapsed = performance.now() - started;
    const cpu = process.cpuUsage(cpuBefore);
    const transactions = store.executor.transactions - transactionsBefore;
    const jobs = store.executor.jobs - jobsBefore;
    stop = true;
    await Promise.all(workers);
    return {
      durability,
      groupCommit,
      pairsPerSecond: Math.round((pairs / elapsed) * 1000),
      operationsPerTransaction: Math.round((jobs / Math.max(1, transactions)) * 10) / 10,
      cpuMicrosPerPair: Math.round((cpu.user + cpu.system) / Math.max(1, pairs)),
    };
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const results: Figures[] = [];
for (const durability of ["normal", "full"] as const) {
  for (const groupCommit of [true, false]) {
    results.push(await measure(durability, groupCommit));
  }
}
console.log(`SQLite store alone, ${concurrency} concurrent claim+complete loops, ${durationMs} ms each:`);
console.table(
  results.map((r) => ({
    durability: r.durability,
    "group commit": r.groupCommit ? "on" : "off",
    "claim+complete /s": r.pairsPerSecond,
    "operations per transaction": r.operationsPerTransaction,
    "CPU µs per pair": r.cpuMicrosPerPair,
  })),
);
for (const durability of ["normal", "full"] as const) {
  const on = results.find((r) => r.durability === durability && r.groupCommit)!;
  const off = results.find((r) => r.durability === durability && !r.groupCommit)!;
  console.log(`durability ${durability}: group commit ${(on.pairsPerSecond / off.pairsPerSecond).toFixed(1)}x`);
}
