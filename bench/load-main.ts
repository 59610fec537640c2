// The load generator: a child process of bench/main.ts that calls a scenario's
// server over HTTP/2 on loopback and measures each call.
import { randomUUID } from "node:crypto";
import { type Client, createClient } from "@connectrpc/connect";
import { PaymentService } from "../gen/demo/v1/payments_pb.js";
import { createTestTransport } from "../test/support/test-transports.js";
import { serveParent } from "./child-ipc.js";
import { type IntervalStats, measureClosedLoop } from "./latency-stats.js";
import { paymentRequest } from "./payment-request.js";

/** The wire protocols the bench can use, always with the binary codec. */
export type BenchProtocol = "grpc" | "connect";

/** Which server, over which protocol. */
export interface Target {
  readonly baseUrl: string;
  readonly protocol: BenchProtocol;
}

/** One closed-loop run against a server. */
export interface LoadRun extends Target {
  readonly concurrency: number;
  readonly durationMs: number;
  /** `new`: a fresh request ID per call; `replay`: cycle through the keys `prepareReplay` completed. */
  readonly keys: "new" | "replay";
}

/** What a run measured, plus the load generator's own cost. */
export interface LoadStats extends IntervalStats {
  /** CPU time the load generator spent per completed call: when it nears a core's worth, the client is the bottleneck. */
  readonly clientCpuMicrosPerCall: number;
}

/** The methods the load generator offers bench/main.ts. */
export type LoadApi = {
  prepareReplay(params: Target & { readonly count: number }): Promise<void>;
  run(params: LoadRun): Promise<LoadStats>;
  stop(): Promise<void>;
};

const clients = new Map<string, Client<typeof PaymentService>>();
const replayKeys = new Map<string, string[]>();

function clientFor(target: Target): Client<typeof PaymentService> {
  const id = `${target.protocol} ${target.baseUrl}`;
  let client = clients.get(id);
  if (client === undefined) {
    // One HTTP/2 connection per server, as one connect-node client process has.
    client = createClient(
      PaymentService,
      createTestTransport(target.baseUrl, { protocol: target.protocol, binary: true, gzip: false }),
    );
    clients.set(id, client);
  }
  return client;
}

const api: LoadApi = {
  async prepareReplay({ count, ...target }) {
    const client = clientFor(target);
    const keys = Array.from({ length: count }, () => randomUUID());
    await Promise.all(keys.map((key) => client.createPayment(paymentRequest(key))));
    replayKeys.set(target.baseUrl, keys);
  },
  async run({ concurrency, durationMs, keys, ...target }) {
    const client = clientFor(target);
    let call = () => client.createPayment(paymentRequest(randomUUID()));
    if (keys === "replay") {
      const completed = replayKeys.get(target.baseUrl);
      if (completed === undefined) {
        throw new Error(`prepareReplay was not called for ${target.baseUrl}`);
      }
      let next = 0;
      call = () => client.createPayment(paymentRequest(completed[next++ % completed.length] as string));
    }
    const cpuBefore = process.cpuUsage();
    const stats = await measureClosedLoop(concurrency, durationMs, call);
    const cpu = process.cpuUsage(cpuBefore);
    return { ...stats, clientCpuMicrosPerCall: (cpu.user + cpu.system) / Math.max(1, stats.calls) };
  },
  async stop() {
    setImmediate(() => process.exit(0));
  },
};

serveParent(api);
