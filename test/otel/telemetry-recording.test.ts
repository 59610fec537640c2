import { createClient } from "@connectrpc/connect";
import { context, metrics, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
import { afterEach, describe, expect, it } from "vitest";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { createIdempotencyTelemetry, type IdempotencyTelemetry } from "../../src/otel/idempotency-telemetry.js";
import type { IdempotencyEvent } from "../../src/server/idempotency-event.js";
import { type IdempotencyTestServer, startIdempotencyTestServer } from "../support/idempotency-test-server.js";
import { createTestTransport } from "../support/test-transports.js";

// This file installs global providers only inside single tests and removes
// them afterwards: the default is the state of an application without an SDK.
afterEach(() => {
  metrics.disable();
  trace.disable();
  context.disable();
});

describe("createIdempotencyTelemetry().isRecording", () => {
  it("is false without an SDK, true once a global meter provider is installed, false again when it is removed", async () => {
    const telemetry = createIdempotencyTelemetry();
    expect(telemetry.isRecording?.()).toBe(false);
    const provider = new MeterProvider();
    metrics.setGlobalMeterProvider(provider);
    expect(telemetry.isRecording?.()).toBe(true);
    metrics.disable();
    expect(telemetry.isRecording?.()).toBe(false);
    await provider.shutdown();
  });

  it("is true with an explicit SDK meter provider, and false once that provider is shut down", async () => {
    const provider = new MeterProvider();
    const telemetry = createIdempotencyTelemetry({ meterProvider: provider });
    expect(telemetry.isRecording?.()).toBe(true);
    await provider.shutdown();
    // A shut-down provider hands out the no-op meter; a new telemetry sees that.
    expect(createIdempotencyTelemetry({ meterProvider: provider }).isRecording?.()).toBe(false);
  });

  it("is true inside a recording span even without metrics, and false inside a non-recording one", async () => {
    const telemetry = createIdempotencyTelemetry();
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    const tracerProvider = new BasicTracerProvider();
    trace.setGlobalTracerProvider(tracerProvider);
    const span = trace.getTracer("test").startSpan("call");
    expect(context.with(trace.setSpan(context.active(), span), () => telemetry.isRecording?.())).toBe(true);
    span.end();
    const notRecording = trace.wrapSpanContext(span.spanContext());
    expect(context.with(trace.setSpan(context.active(), notRecording), () => telemetry.isRecording?.())).toBe(false);
    expect(telemetry.isRecording?.()).toBe(false);
    await tracerProvider.shutdown();
  });
});

describe("the interceptor and a telemetry that is not recording", () => {
  let server: IdempotencyTestServer | undefined;

  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  /** A telemetry that records what it receives and reports `recording` as its state. */
  function recordingTelemetry(state: { recording: boolean }): {
    telemetry: IdempotencyTelemetry;
    received: IdempotencyEvent[];
  } {
    const received: IdempotencyEvent[] = [];
    const telemetry = Object.assign((event: IdempotencyEvent) => void received.push(event), {
      isRecording: () => state.recording,
    });
    return { telemetry, received };
  }

  async function start(interceptor: Parameters<typeof startIdempotencyTestServer>[0]) {
    server = await startIdempotencyTestServer(interceptor);
    return createClient(
      PaymentService,
      createTestTransport(server.baseUrl, { protocol: "connect", binary: true, gzip: false }),
    );
  }

  it("builds no events while it is not recording, and complete ones (with store calls) once it is", async () => {
    const state = { recording: false };
    const { telemetry, received } = recordingTelemetry(state);
    const client = await start({ interceptor: { telemetry, onEvent: undefined } });
    await client.createPayment({ requestId: crypto.randomUUID(), accountId: "acc_1", amountMinor: 100n });
    expect(received).toEqual([]);

    state.recording = true;
    await client.createPayment({ requestId: crypto.randomUUID(), accountId: "acc_1", amountMinor: 100n });
    expect(received.map((e) => e.type)).toEqual(["claimed", "completed"]);
    expect(received[0]?.storeCalls?.map((c) => c.operation)).toEqual(["claim"]);
    expect(received[1]?.storeCalls?.map((c) => c.operation)).toEqual(["complete"]);
    expect(received[0]?.keyHash).toMatch(/^[0-9a-f]{32}$/);
  });

  it("still gives every event to onEvent, and to the telemetry next to it, when the telemetry is not recording", async () => {
    const { telemetry, received } = recordingTelemetry({ recording: false });
    const client = await start({ interceptor: { telemetry } });
    await client.createPayment({ requestId: crypto.randomUUID(), accountId: "acc_1", amountMinor: 100n });
    expect(server?.events.map((e) => e.type)).toEqual(["claimed", "completed"]);
    expect(server?.events[0]?.storeCalls?.map((c) => c.operation)).toEqual(["claim"]);
    expect(received.map((e) => e.type)).toEqual(["claimed", "completed"]);
  });

  it("gives every event to a plain function telemetry, which has no isRecording", async () => {
    const received: IdempotencyEvent[] = [];
    const client = await start({
      interceptor: { telemetry: (event) => void received.push(event), onEvent: undefined },
    });
    await client.createPayment({ requestId: crypto.randomUUID(), accountId: "acc_1", amountMinor: 100n });
    expect(received.map((e) => e.type)).toEqual(["claimed", "completed"]);
  });
});
