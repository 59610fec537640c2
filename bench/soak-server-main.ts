// The server of `npm run soak` and of the hardening tests: PaymentService
// (and FixtureService, for opaque request IDs) behind the idempotency interceptor on a SQLite file, in a child process of
// its own (started by soak-server.ts with --expose-gc), so that the parent can
// ask for its heap and its handles after a full gc.
//
// CreatePayment obeys its request's metadata: `delay_ms` keeps the call in
// flight that long; `fail` names a code (such as `failed_precondition`) the
// handler throws. Every handler run appends `<method>\t<request id as JSON>`
// to the executions file before anything else, so that the parent can count
// runs per request ID without this process keeping anything per call.
import { closeSync, openSync, writeSync } from "node:fs";
import { setTimeout as delay } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromString } from "@connectrpc/connect/protocol-connect";
import {
  CreatePaymentResponseSchema,
  GetPaymentResponseSchema,
  PaymentService,
  RefundPaymentResponseSchema,
} from "../gen/demo/v1/payments_pb.js";
import { FixtureService, OpaqueResponseSchema } from "../gen/fixture/v1/fixture_pb.js";
import { createIdempotencyInterceptor } from "../src/server/idempotency-interceptor.js";
import { createSqliteStore, type SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { startHttp2Server, type TestHttp2Server } from "../test/support/http2-server.js";
import { serveParent } from "./child-ipc.js";

/** How the soak server is set up. */
export interface SoakServerOptions {
  /** The SQLite file of the idempotency records; created when missing. */
  readonly sqlitePath: string;
  /** Where every handler run appends one line; created or truncated. */
  readonly executionsFile: string;
  /** The adapter's readMaxBytes. */
  readonly readMaxBytes: number;
  /** The interceptor's `maxWaitMs`; its default when absent. */
  readonly maxWaitMs?: number;
}

/** The server process's memory and handles, read right after a full gc. */
export interface SoakMeasurement {
  /** `process.memoryUsage().heapUsed`. */
  readonly heapUsedBytes: number;
  /** `process.memoryUsage().rss`. */
  readonly rssBytes: number;
  /** `process.getActiveResourcesInfo()`, counted by resource type. */
  readonly activeResources: Readonly<Record<string, number>>;
  /** Handler runs so far. */
  readonly executions: number;
}

/** The methods the soak server offers its parent. */
export type SoakServerApi = {
  /** Opens the store and listens on loopback; resolves to the base URL. */
  start(params: SoakServerOptions): Promise<string>;
  /** Runs gc until the heap stops shrinking, then measures. */
  measure(): Promise<SoakMeasurement>;
  /** Closes the server, the store and the executions file, then exits. */
  stop(): Promise<void>;
};

let server: TestHttp2Server | undefined;
let store: SqliteStore | undefined;
let executionsFd: number | undefined;
let executions = 0;

function recordExecution(method: string, requestId: string): number {
  executions += 1;
  if (executionsFd !== undefined) {
    writeSync(executionsFd, `${method}\t${JSON.stringify(requestId)}\n`);
  }
  return executions;
}

const api: SoakServerApi = {
  async start(options) {
    store = createSqliteStore({ path: options.sqlitePath });
    executionsFd = openSync(options.executionsFile, "w");
    server = await startHttp2Server({
      readMaxBytes: options.readMaxBytes,
      interceptors: [createIdempotencyInterceptor({ store, maxWaitMs: options.maxWaitMs })],
      routes(router) {
        router.service(PaymentService, {
          async createPayment(req) {
            const run = recordExecution("createPayment", req.requestId);
            const delayMs = Number(req.metadata.delay_ms ?? 0);
            if (delayMs > 0) {
              await delay(delayMs);
            }
            if (req.metadata.fail !== undefined) {
              const code = codeFromString(req.metadata.fail);
              throw new ConnectError(`refused by the soak server as ${req.metadata.fail}`, code ?? Code.Unknown);
            }
            return create(CreatePaymentResponseSchema, {
              payment: {
                paymentId: `pay_${process.pid}_${run}`,
                accountId: req.accountId,
                amountMinor: req.amountMinor,
                currency: req.currency,
              },
            });
          },
          refundPayment(req) {
            const run = recordExecution("refundPayment", req.requestId);
            return create(RefundPaymentResponseSchema, {
              payment: { paymentId: `${req.paymentId}_${run}`, refundedMinor: req.amountMinor },
            });
          },
          getPayment(req) {
            return create(GetPaymentResponseSchema, { payment: { paymentId: req.paymentId } });
          },
        });
        // Opaque request IDs (1 to 255 printable ASCII characters) instead of UUIDs.
        router.service(FixtureService, {
          opaque(req) {
            const run = recordExecution("opaque", req.key);
            return create(OpaqueResponseSchema, { text: req.text, executions: run });
          },
          plain: (req) => ({ text: req.text }),
          async upload(requests) {
            let size = 0n;
            for await (const request of requests) {
              size += BigInt(request.chunk.byteLength);
            }
            return { size };
          },
        });
      },
    });
    return server.baseUrl;
  },
  async measure() {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc === undefined) {
      throw new Error("the soak server needs --expose-gc");
    }
    // Let the calls that just answered finish their bookkeeping (completion
    // writes, timers) before counting what is left.
    await delay(200);
    let heap = Number.POSITIVE_INFINITY;
    for (let round = 0; round < 10; round++) {
      gc();
      await new Promise((resolve) => setImmediate(resolve));
      const now = process.memoryUsage().heapUsed;
      if (now >= heap) {
        break;
      }
      heap = now;
    }
    const activeResources: Record<string, number> = {};
    for (const type of process.getActiveResourcesInfo()) {
      activeResources[type] = (activeResources[type] ?? 0) + 1;
    }
    return {
      heapUsedBytes: process.memoryUsage().heapUsed,
      rssBytes: process.memoryUsage().rss,
      activeResources,
      executions,
    };
  },
  async stop() {
    await server?.close();
    await store?.close();
    if (executionsFd !== undefined) {
      closeSync(executionsFd);
    }
    setImmediate(() => process.exit(0));
  },
};

serveParent(api);
