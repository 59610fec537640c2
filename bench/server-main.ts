// The server: a child process of bench/main.ts that serves CreatePayment for
// one scenario over HTTP/2 on loopback.
import { PaymentService } from "../gen/demo/v1/payments_pb.js";
import { serveParent } from "./child-ipc.js";
import { type BenchServiceOptions, createBenchService } from "./bench-services.js";
import { startHttp2Server, type TestHttp2Server } from "../test/support/http2-server.js";
import type { BenchService } from "./bench-service.js";

/** The methods a server child offers bench/main.ts. */
export type ServerApi = {
  /** Sets up the scenario's service and listens; resolves to the base URL. */
  start(params: BenchServiceOptions): Promise<string>;
  /** CPU time this process has used so far, user plus system, in microseconds. */
  cpuMicros(): Promise<number>;
  /** Closes the server and the service, then exits (writing a CPU profile if one is being taken). */
  stop(): Promise<void>;
};

let service: BenchService | undefined;
let server: TestHttp2Server | undefined;

const api: ServerApi = {
  async start(options) {
    service = await createBenchService(options);
    const { createPayment, interceptors } = service;
    server = await startHttp2Server({
      routes: (router) => router.service(PaymentService, { createPayment }),
      interceptors,
    });
    return server.baseUrl;
  },
  async cpuMicros() {
    const usage = process.cpuUsage();
    return usage.user + usage.system;
  },
  async stop() {
    await server?.close();
    await service?.close();
    setImmediate(() => process.exit(0));
  },
};

serveParent(api);
