import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import {
  CreatePaymentResponseSchema,
  PaymentService,
  RefundPaymentResponseSchema,
} from "../../gen/demo/v1/payments_pb.js";
import { FixtureService, OpaqueResponseSchema } from "../../gen/fixture/v1/fixture_pb.js";
import {
  createIdempotencyInterceptor,
  idempotencyContext,
  type IdempotencyContextValue,
  type IdempotencyEvent,
  type IdempotencyInterceptorOptions,
  type IdempotencyStore,
  setExecutedResourceName,
} from "../../src/index.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { type TestHttp2Server, startHttp2Server } from "./http2-server.js";
import { type ManualClock, createManualClock } from "./manual-clock.js";

/** The secret the test server's interceptor keys its event hashes with: `hashRecordKey(key, testKeyHashSecret)`. */
export const testKeyHashSecret = "connect-idempotency tests";

/** One run of a handler, as the test server records it. */
export interface HandlerRun {
  /** The method's local name, such as `createPayment`. */
  readonly method: string;
  /** The request ID in the message. */
  readonly requestId: string;
  /** What the handler saw through `idempotencyContext`. */
  readonly context: IdempotencyContextValue | undefined;
}

/** Options of `startIdempotencyTestServer`. */
export interface IdempotencyTestServerOptions {
  /** Interceptor options on top of the defaults (store and onEvent are filled in). */
  readonly interceptor?: Partial<IdempotencyInterceptorOptions>;
  /** The store; default a fresh in-memory SQLite store on `clock`, without background sweeps. */
  readonly store?: IdempotencyStore;
  /** PaymentService methods replacing the default ones. */
  readonly payments?: Partial<ServiceImpl<typeof PaymentService>>;
  /** FixtureService methods replacing the default ones. */
  readonly fixture?: Partial<ServiceImpl<typeof FixtureService>>;
  /** The default store's clock; default a new manual clock. Share one between servers that share a store file. */
  readonly clock?: ManualClock;
  /** More adapter options, such as `compressMinBytes`. */
  readonly adapter?: Partial<ConnectNodeAdapterOptions>;
  /** More services, registered after PaymentService and FixtureService, given the store. */
  readonly routes?: (router: ConnectRouter, store: IdempotencyStore) => void;
}

/** A server behind the idempotency interceptor, with what the tests observe. */
export interface IdempotencyTestServer extends TestHttp2Server {
  /** The store the interceptor uses. */
  readonly store: IdempotencyStore;
  /** The default store's clock (a store passed in keeps its own). */
  readonly clock: ManualClock;
  /** Every event the interceptor emitted, in order. */
  readonly events: IdempotencyEvent[];
  /** Every handler run of the default handlers (and of overrides that call `record`). */
  readonly runs: HandlerRun[];
  /** Records a handler run; for handler overrides. */
  record(method: string, requestId: string, context: IdempotencyContextValue | undefined): number;
}

/**
 * Starts PaymentService and FixtureService on an HTTP/2 server behind
 * `createIdempotencyInterceptor` with a real store (in-memory SQLite by
 * default, on a manual clock). The default handlers record each run and
 * answer with the run's number, so that a replay is recognizable:
 * CreatePayment answers `payment_id: pay_<n>`, Opaque answers its text, the
 * run number in `executions` and `response_size` bytes of filler.
 */
export async function startIdempotencyTestServer(
  options: IdempotencyTestServerOptions = {},
): Promise<IdempotencyTestServer> {
  const clock = options.clock ?? createManualClock();
  const events: IdempotencyEvent[] = [];
  const runs: HandlerRun[] = [];
  const store = options.store ?? createSqliteStore({ path: ":memory:", sweepIntervalMs: 0, clock });
  const record = (method: string, requestId: string, context: IdempotencyContextValue | undefined) =>
    runs.push({ method, requestId, context });
  const payments: ServiceImpl<typeof PaymentService> = {
    createPayment(req, ctx) {
      const n = record("createPayment", req.requestId, ctx.values.get(idempotencyContext));
      return create(CreatePaymentResponseSchema, {
        payment: {
          paymentId: `pay_${n}`,
          accountId: req.accountId,
          amountMinor: req.amountMinor,
          currency: req.currency,
        },
      });
    },
    refundPayment(req, ctx) {
      const n = record("refundPayment", req.requestId, ctx.values.get(idempotencyContext));
      return create(RefundPaymentResponseSchema, {
        payment: { paymentId: `refund_${n}`, refundedMinor: req.amountMinor },
      });
    },
    getPayment(req) {
      return { payment: { paymentId: req.paymentId } };
    },
    async *watchPayments(req, ctx) {
      const n = record("watchPayments", req.requestId, ctx.values.get(idempotencyContext));
      yield { payment: { paymentId: `watch_${n}`, accountId: req.accountId } };
    },
    ...options.payments,
  };
  const fixture: ServiceImpl<typeof FixtureService> = {
    opaque(req, ctx) {
      const n = record("opaque", req.key, ctx.values.get(idempotencyContext));
      return create(OpaqueResponseSchema, { text: req.text, executions: n, filler: new Uint8Array(req.responseSize) });
    },
    plain(req) {
      record("plain", "", undefined);
      return { text: req.text };
    },
    async upload(requests, ctx) {
      let size = 0n;
      let requestId = "";
      for await (const chunk of requests) {
        size += BigInt(chunk.chunk.byteLength);
        requestId = chunk.requestId;
      }
      record("upload", requestId, ctx.values.get(idempotencyContext));
      return { size };
    },
    reject(req, ctx) {
      const n = record("reject", req.requestId, ctx.values.get(idempotencyContext));
      if (req.fail !== "") {
        throw new ConnectError(`${req.fail} (${n})`, Code.FailedPrecondition);
      }
      setExecutedResourceName(ctx, `things/thing_${n}`);
      return { name: `things/thing_${n}` };
    },
    placeOrder(req, ctx) {
      const n = record("placeOrder", req.orderId, ctx.values.get(idempotencyContext));
      return { executions: n };
    },
    stamped(req, ctx) {
      const n = record("stamped", req.requestId, ctx.values.get(idempotencyContext));
      return { executions: n };
    },
    ...options.fixture,
  };
  const server = await startHttp2Server({
    ...options.adapter,
    interceptors: [
      ...(options.adapter?.interceptors ?? []),
      createIdempotencyInterceptor({
        store,
        keyHashSecret: testKeyHashSecret,
        onEvent: (event) => events.push(event),
        ...options.interceptor,
      }),
    ],
    routes(router) {
      router.service(PaymentService, payments);
      router.service(FixtureService, fixture);
      options.routes?.(router, store);
    },
  });
  return {
    ...server,
    store,
    clock,
    events,
    runs,
    record,
    async close() {
      await server.close();
      await store.close();
    },
  };
}
