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
  /** Invokes CreatePayment with a new request ID per call from `concurrency` workers. */
  run(params: { readonly concurrency: number; readonly durationMs: number }): Promise<LayerStats>;
  stop(): Promise<void>;
};

let service: BenchService | undefined;

const api: LayerApi = {
  async start(options) {
    service = await createBenchService(options);
  },
  async run({ concurrency, durationMs }) {
    const target = service;
    if (target === undefined) {
      throw new Error("start was not called");
    }
    const cpuBefore = process.cpuUsage();
    const stats = await measureClosedLoop(concurrency, durationMs, () => invokeInProcess(target, paymentRequest(randomUUID())));
    const cpu = process.cpuUsage(cpuBefore);
    return { ...stats, serverCpuMicrosPerCall: (cpu.user + cpu.system) / Math.max(1, stats.calls) };
  },
  async stop() {
    await service?.close();
    setImmediate(() => process.exit(0));
  },
};

serveParent(api);
