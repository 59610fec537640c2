// The store-alone scenarios: a child process of bench/main.ts that claims and
// completes new keys directly on a store, without RPC, to show the ceiling the
// interceptor can approach; with `floor`, the same pairs as bare statements.
import { randomUUID } from "node:crypto";
import type { IdempotencyStore } from "../src/store/idempotency-store.js";
import { type BenchStoreOptions, openBenchStore, required } from "./bench-stores.js";
import { serveParent } from "./child-ipc.js";
import { type IntervalStats, measureClosedLoop } from "./latency-stats.js";
import { paymentRecordMethod, paymentRecordScope, storedPaymentOutcome } from "./payment-request.js";
import { openSqliteFloor } from "./sqlite-floor.js";

/** What a run measured, plus this process's CPU time per claim + complete pair. */
export interface StoreStats extends IntervalStats {
  readonly serverCpuMicrosPerCall: number;
}

/** The methods a store child offers bench/main.ts. */
export type StoreApi = {
  start(options: BenchStoreOptions): Promise<void>;
  /** Claims and completes a new key per operation from `concurrency` workers. */
  run(params: { readonly concurrency: number; readonly durationMs: number }): Promise<StoreStats>;
  stop(): Promise<void>;
};

const leaseMs = 30_000;
const graceMs = 10_000;
const retentionMs = 24 * 3600_000;
// One outcome and fingerprint for all operations: computing them is the
// interceptor's work, not the store's.
const outcome = storedPaymentOutcome(randomUUID());
const fingerprint = "9f2c".repeat(16);

/** One claim + complete pair of a new key, on the store or on the floor. */
let pair: (() => Promise<void>) | undefined;
let close: (() => Promise<void>) | undefined;

async function claimAndComplete(target: IdempotencyStore): Promise<void> {
  const key = { scope: paymentRecordScope, method: paymentRecordMethod, key: randomUUID() };
  const owner = randomUUID();
  const claimed = await target.claim({ key, fingerprint, owner, leaseMs, graceMs, expiresInMs: retentionMs });
  if (claimed.kind !== "claimed") {
    throw new Error(`a new key was not claimed: ${claimed.kind}`);
  }
  const { attempt } = claimed.record;
  if (!(await target.complete({ key, owner, attempt, outcome, retentionMs }))) {
    throw new Error("a fresh claim could not be completed");
  }
}

const api: StoreApi = {
  async start(options) {
    if (options.floor === true) {
      const floor = await openSqliteFloor(required(options.sqlitePath, "sqlitePath"));
      pair = async () => {
        const key = randomUUID();
        const owner = randomUUID();
        await floor.claim(key, owner);
        await floor.complete(key, owner, outcome);
      };
      close = () => floor.close();
      return;
    }
    const store = await openBenchStore(options);
    pair = () => claimAndComplete(store);
    close = () => store.close();
  },
  async run({ concurrency, durationMs }) {
    const run = pair;
    if (run === undefined) {
      throw new Error("start was not called");
    }
    const cpuBefore = process.cpuUsage();
    const stats = await measureClosedLoop(concurrency, durationMs, run);
    const cpu = process.cpuUsage(cpuBefore);
    return { ...stats, serverCpuMicrosPerCall: (cpu.user + cpu.system) / Math.max(1, stats.calls) };
  },
  async stop() {
    await close?.();
    setImmediate(() => process.exit(0));
  },
};

serveParent(api);
