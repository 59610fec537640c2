import { type Interceptor, createClient } from "@connectrpc/connect";
import { context, metrics, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  AggregationTemporality,
  type DataPoint,
  type Histogram,
  InMemoryMetricExporter,
  MeterProvider,
  type MetricData,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { ErrorReason } from "../../src/errors/error-reason.js";
import { findErrorReason } from "../../src/errors/idempotency-error.js";
import { createIdempotencyTelemetry } from "../../src/otel/idempotency-telemetry.js";
import { TelemetryAttribute, TelemetryMetric } from "../../src/otel/telemetry-names.js";
import { hashRecordKey } from "../../src/server/key-hash.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { expectConnectError } from "../support/connect-assertions.js";
import {
  type IdempotencyTestServer,
  type IdempotencyTestServerOptions,
  startIdempotencyTestServer,
  testKeyHashSecret,
} from "../support/idempotency-test-server.js";
import { createTestTransport } from "../support/test-transports.js";

const createPayment = "demo.v1.PaymentService/CreatePayment";

// The global providers, as an application installs them with the SDK: the
// interceptor's default telemetry must find them without any option.
// Delta temporality: each collection holds what happened since the previous one.
const metricExporter = new InMemoryMetricExporter(AggregationTemporality.DELTA);
const metricReader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 });
const meterProvider = new MeterProvider({ readers: [metricReader] });
const spanExporter = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spanExporter)] });
const contextManager = new AsyncLocalStorageContextManager();

beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable());
  trace.setGlobalTracerProvider(tracerProvider);
  metrics.setGlobalMeterProvider(meterProvider);
});

afterAll(async () => {
  await meterProvider.shutdown();
  await tracerProvider.shutdown();
  metrics.disable();
  trace.disable();
  context.disable();
});

/**
 * A server span around each call, as an RPC instrumentation makes it: the
 * interceptor runs inside `context.with`, so that its span is the active one.
 * `onEnter` runs once the inner interceptors have started on the call.
 */
function serverSpans(onEnter?: (method: string) => void): Interceptor {
  const tracer = trace.getTracer("test-rpc-server");
  return (next) => async (req) => {
    const span = tracer.startSpan(`${req.method.parent.typeName}/${req.method.name}`);
    try {
      const response = context.with(trace.setSpan(context.active(), span), () => next(req));
      onEnter?.(req.method.name);
      return await response;
    } finally {
      span.end();
    }
  };
}

let server: IdempotencyTestServer | undefined;

async function startServer(options: IdempotencyTestServerOptions & { onEnter?: (method: string) => void } = {}) {
  server = await startIdempotencyTestServer({
    ...options,
    interceptor: { ...options.interceptor },
    adapter: { interceptors: [serverSpans(options.onEnter)] },
  });
  return {
    server,
    client: createClient(
      PaymentService,
      createTestTransport(server.baseUrl, { protocol: "connect", binary: true, gzip: false }),
    ),
  };
}

beforeEach(async () => {
  // Drops what earlier tests recorded.
  await collect();
  spanExporter.reset();
});

afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** The metrics recorded since the previous collection. */
async function collect(): Promise<MetricData[]> {
  metricExporter.reset();
  await metricReader.forceFlush();
  return metricExporter.getMetrics().flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics));
}

/** The `idempotency.outcomes` counts as `{ outcome: count }`, all for CreatePayment. */
function outcomeCounts(collected: readonly MetricData[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const point of pointsOf<number>(collected, TelemetryMetric.outcomes)) {
    expect(point.attributes[TelemetryAttribute.rpcMethod]).toBe(createPayment);
    counts[String(point.attributes[TelemetryAttribute.outcome])] = point.value;
  }
  return counts;
}

function pointsOf<T>(collected: readonly MetricData[], name: string): DataPoint<T>[] {
  const metric = collected.find((m) => m.descriptor.name === name);
  return (metric?.dataPoints ?? []) as DataPoint<T>[];
}

function spanAttributes() {
  return spanExporter.getFinishedSpans().map((span) => span.attributes);
}

describe("idempotency telemetry through the default global providers", () => {
  it("counts a claim and its replay, and marks both server spans", async () => {
    const { client } = await startServer();
    const requestId = crypto.randomUUID();
    const first = await client.createPayment({ requestId, accountId: "acc_1", amountMinor: 500n });
    const second = await client.createPayment({ requestId, accountId: "acc_1", amountMinor: 500n });
    expect(second.payment?.paymentId).toBe(first.payment?.paymentId);

    expect(outcomeCounts(await collect())).toEqual({ claimed: 1, replayed: 1 });
    const keyHash = hashRecordKey({ scope: "", method: createPayment, key: requestId }, testKeyHashSecret);
    expect(spanAttributes()).toEqual([
      {
        [TelemetryAttribute.outcome]: "claimed",
        [TelemetryAttribute.replayed]: false,
        [TelemetryAttribute.keyHash]: keyHash,
      },
      {
        [TelemetryAttribute.outcome]: "replayed",
        [TelemetryAttribute.replayed]: true,
        [TelemetryAttribute.keyHash]: keyHash,
      },
    ]);
  });

  it("counts a reused request ID with another payload as mismatch", async () => {
    const { client } = await startServer();
    const requestId = crypto.randomUUID();
    await client.createPayment({ requestId, accountId: "acc_1", amountMinor: 500n });
    const error = await expectConnectError(client.createPayment({ requestId, accountId: "acc_1", amountMinor: 900n }));
    expect(findErrorReason(error)).toBe(ErrorReason.REQUEST_ID_REUSED);

    expect(outcomeCounts(await collect())).toEqual({ claimed: 1, mismatch: 1 });
    expect(spanAttributes()[1]).toMatchObject({
      [TelemetryAttribute.outcome]: "mismatch",
      [TelemetryAttribute.replayed]: false,
    });
  });

  it("records waits for an in-flight duplicate: one that times out, one that gets the outcome", async () => {
    let finish: () => void = () => {};
    const handlerBlocked = new Promise<void>((resolve) => (finish = resolve));
    let entered = 0;
    const { client, server } = await startServer({
      interceptor: { maxWaitMs: 200 },
      payments: {
        async createPayment(req) {
          await handlerBlocked;
          return { payment: { paymentId: `pay_${server.record("createPayment", req.requestId, undefined)}` } };
        },
      },
      // The third call is the second duplicate: let the handler finish while it waits.
      onEnter: () => {
        if (++entered === 3) setImmediate(finish);
      },
    });
    const requestId = crypto.randomUUID();
    const request = { requestId, accountId: "acc_1", amountMinor: 500n };
    const first = client.createPayment(request);
    await new Promise<void>((resolve) => {
      const check = () => (entered > 0 ? resolve() : setImmediate(check));
      check();
    });
    const conflict = await expectConnectError(client.createPayment(request));
    expect(findErrorReason(conflict)).toBe(ErrorReason.REQUEST_IN_PROGRESS);
    // The next duplicate waits again, and gets the outcome when the handler finishes.
    const [firstResponse, replayed] = await Promise.all([first, client.createPayment(request)]);
    expect(replayed.payment?.paymentId).toBe(firstResponse.payment?.paymentId);

    const collected = await collect();
    expect(outcomeCounts(collected)).toEqual({ claimed: 1, in_progress: 1, replayed: 1 });
    const waits = pointsOf<Histogram>(collected, TelemetryMetric.waitDuration);
    const byResult = Object.fromEntries(
      waits.map((point) => [String(point.attributes[TelemetryAttribute.waitResult]), point.value]),
    );
    expect(Object.keys(byResult).sort()).toEqual(["outcome", "timeout"]);
    expect(byResult.timeout?.count).toBe(1);
    // Seconds, not milliseconds: the timed-out wait lasted maxWaitMs (200 ms).
    expect(byResult.timeout?.sum).toBeGreaterThanOrEqual(0.19);
    expect(byResult.timeout?.sum).toBeLessThan(5);
    expect(byResult.outcome?.count).toBe(1);
    expect(waits.every((point) => point.attributes[TelemetryAttribute.rpcMethod] === createPayment)).toBe(true);
    expect(spanAttributes().map((a) => a[TelemetryAttribute.outcome])).toContain("in_progress");
  });

  it("records the duration of each store operation, in seconds", async () => {
    const { client } = await startServer();
    const requestId = crypto.randomUUID();
    await client.createPayment({ requestId, accountId: "acc_1", amountMinor: 500n });
    await client.createPayment({ requestId, accountId: "acc_1", amountMinor: 500n });

    const points = pointsOf<Histogram>(await collect(), TelemetryMetric.storeDuration);
    const counts = Object.fromEntries(
      points.map((point) => [String(point.attributes[TelemetryAttribute.storeOperation]), point.value.count]),
    );
    // Two claims (the second finds the completed record) and one completion.
    expect(counts).toEqual({ claim: 2, complete: 1 });
    for (const point of points) {
      expect(point.attributes[TelemetryAttribute.rpcMethod]).toBe(createPayment);
      expect(point.attributes[TelemetryAttribute.errorType]).toBeUndefined();
      expect(point.value.sum).toBeGreaterThan(0);
      // A loopback SQLite operation takes far less than a second; a value in
      // milliseconds would not.
      expect(point.value.sum).toBeLessThan(1);
    }
  });

  it("counts a failing store as store_error, with error.type on its operation", async () => {
    const store = createSqliteStore({ path: ":memory:", sweepIntervalMs: 0 });
    const { client } = await startServer({ store });
    await store.close();
    const error = await expectConnectError(
      client.createPayment({ requestId: crypto.randomUUID(), accountId: "acc_1", amountMinor: 500n }),
    );
    expect(findErrorReason(error)).toBe(ErrorReason.STORE_UNAVAILABLE);

    const collected = await collect();
    expect(outcomeCounts(collected)).toEqual({ store_error: 1 });
    const points = pointsOf<Histogram>(collected, TelemetryMetric.storeDuration);
    expect(points.map((point) => point.attributes)).toEqual([
      {
        [TelemetryAttribute.rpcMethod]: createPayment,
        [TelemetryAttribute.storeOperation]: "claim",
        [TelemetryAttribute.errorType]: "store_error",
      },
    ]);
    expect(spanAttributes()[0]?.[TelemetryAttribute.outcome]).toBe("store_error");
  });

  it("never exports a request ID in clear", async () => {
    const { client } = await startServer();
    const requestId = crypto.randomUUID();
    await client.createPayment({ requestId, accountId: "acc_1", amountMinor: 500n });
    await client.createPayment({ requestId, accountId: "acc_1", amountMinor: 500n });
    await expectConnectError(client.createPayment({ requestId, accountId: "acc_1", amountMinor: 1n }));

    const exported = serialize({ metrics: await collect(), spans: spanExporter.getFinishedSpans() });
    expect(exported).toContain(hashRecordKey({ scope: "", method: createPayment, key: requestId }, testKeyHashSecret));
    expect(exported).not.toContain(requestId);
    // Nor in another spelling of the same UUID.
    expect(exported.toLowerCase()).not.toContain(requestId.replaceAll("-", ""));
  });
});

describe("createIdempotencyTelemetry with its own meter provider", () => {
  it("records there instead of on the global provider", async () => {
    const ownExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const ownReader = new PeriodicExportingMetricReader({ exporter: ownExporter, exportIntervalMillis: 3_600_000 });
    const own = new MeterProvider({ readers: [ownReader] });
    try {
      const { client } = await startServer({
        interceptor: { telemetry: createIdempotencyTelemetry({ meterProvider: own }) },
      });
      await client.createPayment({ requestId: crypto.randomUUID(), accountId: "acc_1", amountMinor: 500n });
      await ownReader.forceFlush();
      const counter = ownExporter
        .getMetrics()
        .flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics))
        .find((m) => m.descriptor.name === TelemetryMetric.outcomes);
      expect(counter?.dataPoints.map((point) => point.attributes[TelemetryAttribute.outcome])).toEqual(["claimed"]);
      expect(outcomeCounts(await collect())).toEqual({});
      // The span is whatever span is active, whichever provider made it.
      expect(spanAttributes()[0]?.[TelemetryAttribute.outcome]).toBe("claimed");
    } finally {
      await own.shutdown();
    }
  });

  it("is off with telemetry: false, while onEvent still gets every event", async () => {
    const { client, server } = await startServer({ interceptor: { telemetry: false } });
    await client.createPayment({ requestId: crypto.randomUUID(), accountId: "acc_1", amountMinor: 500n });
    expect(server.events.map((event) => event.type)).toEqual(["claimed", "completed"]);
    expect(outcomeCounts(await collect())).toEqual({});
    expect(spanAttributes()).toEqual([{}]);
  });
});

describe("the interceptor's telemetry option", () => {
  it("keeps calls and onEvent working when telemetry throws", async () => {
    const { client, server } = await startServer({
      interceptor: {
        telemetry: () => {
          throw new Error("broken exporter");
        },
      },
    });
    const requestId = crypto.randomUUID();
    const first = await client.createPayment({ requestId, accountId: "acc_1", amountMinor: 500n });
    const second = await client.createPayment({ requestId, accountId: "acc_1", amountMinor: 500n });
    expect(second.payment?.paymentId).toBe(first.payment?.paymentId);
    expect(server.events.map((event) => event.type)).toEqual(["claimed", "completed", "replayed"]);
  });
});

/** JSON of exported data, cycles and bigints included, to search it as text. */
function serialize(value: unknown): string {
  const seen = new WeakSet<object>();
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === "bigint") return v.toString();
    if (typeof v === "object" && v !== null) {
      if (seen.has(v)) return undefined;
      seen.add(v);
    }
    return v;
  });
}
