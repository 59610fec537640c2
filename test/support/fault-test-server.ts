import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type MessageInitShape, create } from "@bufbuild/protobuf";
import { type Client, Code, type HandlerContext, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import {
  type CreatePaymentRequest,
  type CreatePaymentResponse,
  CreatePaymentResponseSchema,
  PaymentService,
} from "../../gen/demo/v1/payments_pb.js";
import {
  atomicEffects,
  createIdempotencyInterceptor,
  idempotencyContext,
  type IdempotencyEvent,
  type IdempotencyInterceptorOptions,
  type IdempotencyRecord,
} from "../../src/index.js";
import { decodeStoredOutcome } from "../../src/protocol/index.js";
import type { AtomicIdempotencyStore, TransactionMode } from "../../src/store/atomic-idempotency-store.js";
import { type SqliteStoreOptions, createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { type TestHttp2Server, startHttp2Server } from "./http2-server.js";

/** The method name CreatePayment records carry. */
export const createPaymentMethod = "demo.v1.PaymentService/CreatePayment";

/** One execution of the fault server's handler, as it saw itself. */
export interface FaultRun {
  /** The request ID of the call. */
  readonly requestId: string;
  /** The how-manyth execution under this request ID this is, counted by the test (1 for the first). */
  readonly n: number;
  /** `attempt` of the idempotency context (undefined where the interceptor does not set it). */
  readonly attempt: number | undefined;
  /** `takeover` of the idempotency context. */
  readonly takeover: boolean | undefined;
  /** When the execution started, by `Date.now()`. */
  readonly startedAt: number;
  /** Why the call's signal aborted while the handler ran, as `Code message`, if it did. */
  aborted?: string;
  /** Resolves once the handler has returned or thrown. */
  readonly done: Promise<void>;
}

/** How a handler charges: a bare side effect, or inside `phase("charge", ...)` of `atomicEffects`. */
export type ChargeMode = "plain" | "phase";

/** What a fault server's handler gets besides the request. */
export interface FaultTools {
  /** This execution. */
  readonly run: FaultRun;
  /** Charges once per run ("plain") or once per request ID across takeovers ("phase"); returns the charge ID. */
  charge(mode: ChargeMode): Promise<string>;
  /** Sleeps `ms`, rejecting when the call's signal aborts (and noting why in `run.aborted`). */
  sleepUnlessAborted(ms: number): Promise<void>;
}

/** Options of `startFaultServer`. */
export interface FaultServerOptions {
  /** A folder for the SQLite file. */
  readonly dir: string;
  /** Interceptor options on top of the store and `onEvent`. */
  readonly interceptor?: Partial<IdempotencyInterceptorOptions>;
  /** Another store instead of SQLite (such as PostgreSQL); the server closes it. */
  readonly store?: AtomicIdempotencyStore<unknown, TransactionMode>;
  /** SQLite store options; sweeps are off, and the file is a new one in `dir` unless `path` names one. */
  readonly sqlite?: Partial<SqliteStoreOptions>;
  /** CreatePayment; its response gets `payment_id: pay_<n>` unless it sets one. */
  readonly createPayment: (
    req: CreatePaymentRequest,
    ctx: HandlerContext,
    tools: FaultTools,
  ) => Promise<MessageInitShape<typeof CreatePaymentResponseSchema> | undefined>;
}

/** A PaymentService behind the idempotency interceptor on a SQLite file (or another store), with what the fault tests observe. */
export interface FaultServer extends TestHttp2Server {
  readonly store: AtomicIdempotencyStore<unknown, TransactionMode>;
  /** Every handler execution, in the order they started. */
  readonly runs: FaultRun[];
  /** Charges per request ID (the side effect that must happen once). */
  readonly charges: Map<string, number>;
  /** Every interceptor event. */
  readonly events: IdempotencyEvent[];
  /** The executions of one request ID. */
  runsOf(requestId: string): FaultRun[];
  /** The record of a CreatePayment request ID, as the store has it. */
  record(requestId: string): Promise<IdempotencyRecord | undefined>;
  /**
   * Waits (at most `timeoutMs`) until the record of `requestId` is no longer
   * running: gone, completed or interrupted. Returns it.
   */
  settled(requestId: string, timeoutMs?: number): Promise<IdempotencyRecord | undefined>;
  /** A plain client (no retries) on the Connect or gRPC protocol, over HTTP/2. */
  client(protocol?: "connect" | "grpc"): Client<typeof PaymentService>;
}

let serversStarted = 0;

/** Starts a fault server; close it with `close()` (server, then store). */
export async function startFaultServer(options: FaultServerOptions): Promise<FaultServer> {
  serversStarted += 1;
  const path = join(options.dir, `idem-${serversStarted}.db`);
  const store = options.store ?? createSqliteStore({ path, sweepIntervalMs: 0, ...options.sqlite });
  const runs: FaultRun[] = [];
  const charges = new Map<string, number>();
  const events: IdempotencyEvent[] = [];
  const runsOf = (requestId: string) => runs.filter((r) => r.requestId === requestId);
  const chargeOnce = (requestId: string) => {
    const total = (charges.get(requestId) ?? 0) + 1;
    charges.set(requestId, total);
    return `ch_${requestId.slice(0, 8)}_${total}`;
  };
  const server = await startHttp2Server({
    interceptors: [createIdempotencyInterceptor({ store, onEvent: (e) => events.push(e), ...options.interceptor })],
    routes(router) {
      router.service(PaymentService, {
        async createPayment(req, ctx) {
          const context = ctx.values.get(idempotencyContext);
          let finish = () => {};
          const run: FaultRun = {
            requestId: req.requestId,
            n: runsOf(req.requestId).length + 1,
            attempt: context?.attempt,
            takeover: context?.takeover,
            startedAt: Date.now(),
            done: new Promise<void>((resolve) => (finish = resolve)),
          };
          runs.push(run);
          const tools: FaultTools = {
            run,
            async charge(mode) {
              if (mode === "plain") {
                return chargeOnce(req.requestId);
              }
              return atomicEffects(ctx, store).phase("charge", () => chargeOnce(req.requestId));
            },
            async sleepUnlessAborted(ms) {
              try {
                await sleep(ms, undefined, { signal: ctx.signal });
              } catch (error) {
                run.aborted = describeAbort(ctx.signal.reason);
                throw error;
              }
            },
          };
          try {
            const response = await options.createPayment(req, ctx, tools);
            return create(CreatePaymentResponseSchema, {
              payment: { paymentId: `pay_${run.n}`, ...response?.payment },
            });
          } finally {
            finish();
          }
        },
      });
    },
  });
  const record = (requestId: string) => store.get({ scope: "", method: createPaymentMethod, key: requestId });
  const transports = {
    connect: createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "2" }),
    // connect-node speaks gRPC over HTTP/2 only.
    grpc: createGrpcTransport({ baseUrl: server.baseUrl }),
  };
  return {
    ...server,
    store,
    runs,
    charges,
    events,
    runsOf,
    record,
    async settled(requestId, timeoutMs = 3_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const found = await record(requestId);
        if (found === undefined || found.status !== "in_progress" || Date.now() >= until) {
          return found;
        }
        await sleep(20);
      }
    },
    client: (protocol = "connect") => createClient(PaymentService, transports[protocol]),
    async close() {
      await server.close();
      await store.close();
    },
  };
}

/** `Code message` of an abort reason, as the handler saw it. */
export function describeAbort(reason: unknown): string {
  const error = reason as { code?: unknown; rawMessage?: unknown; message?: unknown; name?: unknown } | undefined;
  const code = typeof error?.code === "number" ? codeName(error.code) : String(error?.name ?? "unknown");
  const message = typeof error?.rawMessage === "string" ? error.rawMessage : String(error?.message ?? "");
  return `${code} ${message}`;
}

/**
 * What a record's stored outcome is, readably: `response`, or the stored
 * error as `error <Code> <message>`; `none` while there is no outcome.
 */
export function describeOutcome(record: IdempotencyRecord | undefined): string {
  if (record?.outcome === undefined) {
    return "none";
  }
  const outcome = decodeStoredOutcome(record.outcome);
  switch (outcome.kind) {
    case "response":
      return "response";
    case "executed":
      return `executed ${outcome.resourceName}`;
    default:
      return `error ${codeName(outcome.error.code)} ${outcome.error.rawMessage}`;
  }
}

/** The name of a Connect code, such as `Unavailable`. */
export function codeName(code: number): string {
  return Code[code] ?? String(code);
}

/** The answer of a call: `ok <payment id>` or `<Code>: <message>`. */
export async function answerOf(call: Promise<CreatePaymentResponse>): Promise<string> {
  try {
    const response = await call;
    return `ok ${response.payment?.paymentId}`;
  } catch (error) {
    const e = error as { code?: number; rawMessage?: string };
    return `${codeName(e.code ?? -1)}: ${e.rawMessage ?? String(error)}`;
  }
}
