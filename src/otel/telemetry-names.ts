import type { IdempotencyEventType } from "../server/idempotency-event.js";

/** The names of the metrics `createIdempotencyTelemetry` records. */
export const TelemetryMetric = {
  /** Counter of decisions, by `rpc.method` and `idempotency.outcome`. */
  outcomes: "idempotency.outcomes",
  /** Histogram, in seconds, of waits for an in-flight duplicate. */
  waitDuration: "idempotency.wait.duration",
  /** Histogram, in seconds, of store operations. */
  storeDuration: "idempotency.store.duration",
} as const;

/** The attribute names on metrics and spans. */
export const TelemetryAttribute = {
  /** The fully qualified method, such as `demo.v1.PaymentService/CreatePayment`. */
  rpcMethod: "rpc.method",
  /** A `TelemetryOutcome`. */
  outcome: "idempotency.outcome",
  /** On spans: true when the response was replayed from the store. */
  replayed: "idempotency.replayed",
  /** On spans: the hashed record key; request IDs never appear in clear. */
  keyHash: "idempotency.key_hash",
  /** On the wait histogram: `outcome`, `released` or `timeout`. */
  waitResult: "idempotency.wait.result",
  /** On the store histogram: `claim`, `complete`, `release`, `renew` or `get`. */
  storeOperation: "idempotency.store.operation",
  /** On the store histogram, for failed operations only. */
  errorType: "error.type",
} as const;

/**
 * The values of `idempotency.outcome`: the event types that decide a call,
 * with `conflict` named after the error reason clients see (REQUEST_IN_PROGRESS).
 */
export type TelemetryOutcome = Exclude<IdempotencyEventType, "completed" | "waited" | "conflict"> | "in_progress";
