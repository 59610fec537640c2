// The store-alone scenarios: a child process of bench/main.ts that claims and
// completes new keys directly on a store, without RPC, to show the ceiling the
// interceptor can approach.
import { randomUUID } from "node:crypto";
import type { IdempotencyStore } from "../src/store/idempotency-store.js";
import { type BenchStoreOptions, openBenchStore } from "./bench-stores.js";
import { serveParent } from "./child-ipc.js";
import { type IntervalStats, measureClosedLoop } from "./latency-stats.js";
import { paymentRecordMethod, paymentRecordScope, storedPaymentOutcome } from "./payment-request.js";

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

let store: IdempotencyStore | undefined;

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
    store = await openBenchStore(options);
  },
  async run({ concurrency, durationMs }) {
    const target = store;
    if (target === undefined) {
      throw new Error("start was not called");
    }
    const cpuBefore = process.cpuUsage();
    const stats = await measureClosedLoop(concurrency, durationMs, () => claimAndComplete(target));
    const cpu = process.cpuUsage(cpuBefore);
    return { ...stats, serverCpuMicrosPerCall: (cpu.user + cpu.system) / Math.max(1, stats.calls) };
  },
  async stop() {
    await store?.close();
    setImmediate(() => process.exit(0));
  },
};

serveParent(api);
