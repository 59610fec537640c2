// The layer-alone scenarios: a child process of bench/main.ts that invokes a
// scenario's CreatePayment in-process, without RPC, so that what it measures
// is the idempotency layer around the handler rather than HTTP/2 and the wire.
import { randomUUID } from "node:crypto";
import type { BenchService } from "./bench-service.js";
import { type BenchServiceOptions, createBenchService } from "./bench-services.js";
import { serveParent } from "./child-ipc.js";
import { invokeInProcess } from "./invoke-in-process.js";
import { type IntervalStats, measureClosedLoop } from "./latency-stats.js";
import { paymentRequest } from "./payment-request.js";

/** What a run measured, plus this process's CPU time per call. */
export interface LayerStats extends IntervalStats {
  readonly serverCpuMicrosPerCall: number;
}

/** The methods a layer child offers bench/main.ts. */
export type LayerApi = {
  /** Sets up the scenario's service, as a server process would. */
  start(options: BenchServiceOptions): Promise<void>;
  /** Completes `count` keys, for runs with `keys: "replay"`. */
  prepareReplay(params: { readonly count: number }): Promise<void>;
  /**
   * Invokes CreatePayment from `concurrency` workers: with a new request ID
   * per call, or (`replay`) cycling through the keys `prepareReplay` completed.
   */
  run(params: {
    readonly concurrency: number;
    readonly durationMs: number;
    readonly keys: "new" | "replay";
  }): Promise<LayerStats>;
  stop(): Promise<void>;
};

let service: BenchService | undefined;
let replayKeys: string[] = [];

function started(): BenchService {
  if (service === undefined) {
    throw new Error("start was not called");
  }
  return service;
}

const api: LayerApi = {
  async start(options) {
    service = await createBenchService(options);
  },
  async prepareReplay({ count }) {
    const target = started();
    replayKeys = Array.from({ length: count }, () => randomUUID());
    await Promise.all(replayKeys.map((key) => invokeInProcess(target, paymentRequest(key))));
  },
  async run({ concurrency, durationMs, keys }) {
    const target = started();
    let call = () => invokeInProcess(target, paymentRequest(randomUUID()));
    if (keys === "replay") {
      if (replayKeys.length === 0) {
        throw new Error("prepareReplay was not called");
      }
      let next = 0;
      call = () => invokeInProcess(target, paymentRequest(replayKeys[next++ % replayKeys.length] as string));
    }
    const cpuBefore = process.cpuUsage();
    const stats = await measureClosedLoop(concurrency, durationMs, call);
    const cpu = process.cpuUsage(cpuBefore);
    return { ...stats, serverCpuMicrosPerCall: (cpu.user + cpu.system) / Math.max(1, stats.calls) };
  },
  async stop() {
    await service?.close();
    setImmediate(() => process.exit(0));
  },
};

serveParent(api);
