import {
  type Attributes,
  type Counter,
  createNoopMeter,
  type Histogram,
  type MeterProvider,
  metrics,
  trace,
} from "@opentelemetry/api";
import type { IdempotencyEvent, IdempotencyEventType } from "../server/idempotency-event.js";
import { TelemetryAttribute, TelemetryMetric, type TelemetryOutcome } from "./telemetry-names.js";

/** Options of `createIdempotencyTelemetry`. */
export interface IdempotencyTelemetryOptions {
  /**
   * Where metrics go. By default the global provider of `@opentelemetry/api`,
   * looked up at every event, so that an SDK started after the server was
   * built is still used.
   */
  readonly meterProvider?: MeterProvider;
}

/**
 * Consumes the interceptor's events; see `createIdempotencyTelemetry`. A
 * telemetry of your own may be a plain function, which receives every event.
 */
export type IdempotencyTelemetry = ((event: IdempotencyEvent) => void) & {
  /**
   * Whether an event emitted now would be recorded anywhere. While it returns
   * false, and no `onEvent` listener is set, the interceptor builds no events
   * (nor the key hashes they carry) for it. Must not throw.
   */
  readonly isRecording?: () => boolean;
};

interface Instruments {
  /** False for the no-op meter of `@opentelemetry/api` (no SDK installed): recording is pointless. */
  readonly recording: boolean;
  readonly outcomes: Counter;
  readonly waitDuration: Histogram;
  readonly storeDuration: Histogram;
}

// Seconds, per the OpenTelemetry conventions for durations. Store calls take
// well under a millisecond on SQLite and a few on PostgreSQL; waits for an
// in-flight duplicate last as long as its handler.
const storeBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
const waitBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

const scopeName = "connect-idempotency";

/**
 * Turns the interceptor's events into OpenTelemetry metrics and span
 * attributes, through `@opentelemetry/api` only: without an installed SDK
 * every call is a no-op.
 *
 * - `idempotency.outcomes` counts decisions by `rpc.method` and
 *   `idempotency.outcome`.
 * - `idempotency.wait.duration` (seconds) records how long duplicates waited
 *   for an in-flight execution, by `idempotency.wait.result`.
 * - `idempotency.store.duration` (seconds) records each store operation, by
 *   `idempotency.store.operation`, with `error.type` when it failed.
 * - The active span (the server span of the call) gets `idempotency.outcome`,
 *   `idempotency.replayed` and `idempotency.key_hash`. Request IDs never
 *   appear in clear, only the event's hash.
 *
 * Its `isRecording()` is false while the meter provider is the API's no-op
 * one and the call has no recording span, so that without an SDK the
 * interceptor skips building events for it.
 */
export function createIdempotencyTelemetry(options: IdempotencyTelemetryOptions = {}): IdempotencyTelemetry {
  const instrumentsFor = createInstrumentCache();
  const meterProvider = () => options.meterProvider ?? metrics.getMeterProvider();
  const telemetry = (event: IdempotencyEvent) => {
    const instruments = instrumentsFor(meterProvider());
    const method = { [TelemetryAttribute.rpcMethod]: event.method };
    for (const call of event.storeCalls ?? []) {
      const attributes: Attributes = { ...method, [TelemetryAttribute.storeOperation]: call.operation };
      if (call.failed) {
        attributes[TelemetryAttribute.errorType] = "store_error";
      }
      instruments.storeDuration.record(call.ms / 1000, attributes);
    }
    if (event.type === "waited" && event.waitedMs !== undefined) {
      instruments.waitDuration.record(event.waitedMs / 1000, {
        ...method,
        [TelemetryAttribute.waitResult]: event.waitResult ?? "outcome",
      });
    }
    const outcome = outcomeOf(event.type);
    if (outcome === undefined) {
      return;
    }
    instruments.outcomes.add(1, { ...method, [TelemetryAttribute.outcome]: outcome });
    trace.getActiveSpan()?.setAttributes({
      [TelemetryAttribute.outcome]: outcome,
      [TelemetryAttribute.replayed]: event.type === "replayed",
      [TelemetryAttribute.keyHash]: event.keyHash,
    });
  };
  return Object.assign(telemetry, {
    isRecording: () => instrumentsFor(meterProvider()).recording || trace.getActiveSpan()?.isRecording() === true,
  });
}

/**
 * The outcome a call's event reports, or undefined for the events that only
 * feed a histogram: `completed` follows the `claimed` already counted, and
 * `waited` is followed by the decision the wait led to.
 */
function outcomeOf(type: IdempotencyEventType): TelemetryOutcome | undefined {
  switch (type) {
    case "completed":
    case "waited":
      return undefined;
    case "conflict":
      // Named after the error reason a client sees: REQUEST_IN_PROGRESS.
      return "in_progress";
    default:
      return type;
  }
}

// One set of instruments per provider: the global provider may be replaced
// while the server runs, and creating instruments on every call is wasteful.
function createInstrumentCache(): (provider: MeterProvider) => Instruments {
  const cache = new WeakMap<MeterProvider, Instruments>();
  return (provider) => {
    let found = cache.get(provider);
    if (found === undefined) {
      const meter = provider.getMeter(scopeName);
      found = {
        recording: meter !== createNoopMeter(),
        outcomes: meter.createCounter(TelemetryMetric.outcomes, {
          description: "Idempotency decisions of the server interceptor, by method and outcome.",
          unit: "{outcome}",
        }),
        waitDuration: meter.createHistogram(TelemetryMetric.waitDuration, {
          description: "Time duplicates spent waiting for the in-flight execution of their request ID.",
          unit: "s",
          advice: { explicitBucketBoundaries: waitBuckets },
        }),
        storeDuration: meter.createHistogram(TelemetryMetric.storeDuration, {
          description: "Duration of idempotency store operations.",
          unit: "s",
          advice: { explicitBucketBoundaries: storeBuckets },
        }),
      };
      cache.set(provider, found);
    }
    return found;
  };
}
