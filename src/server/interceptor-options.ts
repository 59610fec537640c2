import type { Code, UnaryRequest } from "@connectrpc/connect";
import type { IdempotencyExtensions } from "../policy/idempotency-extensions.js";
import { runtimeExtensions } from "../policy/runtime-extensions.js";
import type { IdempotencyStore } from "../store/idempotency-store.js";
import { type ErrorDisposition, resolveCodeDispositions } from "./error-disposition.js";
import { createIdempotencyTelemetry, type IdempotencyTelemetry } from "../otel/idempotency-telemetry.js";
import type { IdempotencyEvent } from "./idempotency-event.js";

/** Options of `createIdempotencyInterceptor`. */
export interface IdempotencyInterceptorOptions {
  /** Where records live, such as `createSqliteStore(...)`. */
  readonly store: IdempotencyStore;
  /**
   * The tenant or principal a call belongs to. Request IDs are unique per
   * scope: the same ID from two tenants is two records, and one tenant
   * never receives another's stored response. Derive it from the
   * authenticated identity (a context value set by your auth interceptor),
   * never from the payload. May be async. Default: one shared scope `""`.
   */
  readonly scope?: (req: UnaryRequest) => string | Promise<string>;
  /**
   * How long a completed request ID is remembered, in milliseconds. A
   * method's `(idempotency.v1.policy).retention` overrides it. Default 24 h.
   */
  readonly retention?: number;
  /**
   * How long a claim holds without renewal, in milliseconds. A running
   * handler renews it every third of the lease; when its process dies, the
   * next retry takes the key over once the lease and `leaseGrace` have run
   * out. At least 1 s, and at least 3 times the store's longest blocking
   * wait (the SQLite store's `busyTimeoutMs`), during which no renewal can
   * run. Default 30 s.
   */
  readonly lease?: number;
  /**
   * How long past the end of a lease a claim still counts as held, in
   * milliseconds: a takeover needs the lease plus this. An owner whose
   * renewals or completion were held up by a store outage retries every
   * 250 ms once the store answers again, so with a grace longer than that it
   * wins against a retry that arrives at the same moment. An interrupted
   * claim (an indefinite error) is taken over at once. Default 2 s.
   */
  readonly leaseGrace?: number;
  /**
   * How long a duplicate that arrives while the first call runs waits for
   * its outcome, in milliseconds, never beyond the call's deadline. After
   * that it fails with ABORTED, reason REQUEST_IN_PROGRESS. Default 5 s.
   */
  readonly maxWait?: number;
  /**
   * Codes whose errors the handler decided: stored and replayed to every
   * retry. Codes not named in any of the three lists keep their default
   * (`defaultStoredCodes`, `defaultIndefiniteCodes`).
   */
  readonly storedCodes?: readonly Code[];
  /**
   * Codes whose errors are indefinite (the handler may have acted): the
   * record and its phases stay, its lease ends at once, and the next call
   * with the same payload takes it over with `attempt` + 1. Default:
   * `defaultIndefiniteCodes`.
   */
  readonly indefiniteCodes?: readonly Code[];
  /**
   * Codes whose errors mean that nothing happened: the record and its phases
   * are deleted and a retry runs afresh. Default none; a handler marks one
   * error with `releaseOnError` instead.
   */
  readonly releasedCodes?: readonly Code[];
  /**
   * The largest encoded outcome stored, in bytes. The caller of a larger
   * response still gets it, but the store keeps a FAILED_PRECONDITION error
   * with reason RESPONSE_TOO_LARGE, so that a retry learns the call already
   * ran instead of running it again. Default 4 MiB.
   */
  readonly maxStoredBytes?: number;
  /** Receives every decision, for logs and metrics. Must not throw. */
  readonly onEvent?: (event: IdempotencyEvent) => void;
  /**
   * Turns every decision into OpenTelemetry metrics and span attributes,
   * before `onEvent` sees it. Default: `createIdempotencyTelemetry()` on the
   * global providers of `@opentelemetry/api`, a no-op until the application
   * installs an SDK. `false` turns it off. See "Operations" in the README.
   */
  readonly telemetry?: IdempotencyTelemetry | false;
  /** The proto extensions that mark request IDs. Default `runtimeExtensions`. */
  readonly extensions?: IdempotencyExtensions;
  /**
   * The compressions of the server adapter (its `acceptCompression`), in the
   * same order: replayed gRPC and gRPC-Web responses name the compression
   * the protocol negotiates from them. Default: gzip and br, connect-node's
   * default.
   */
  readonly acceptCompression?: readonly { readonly name: string }[];
}

/** The options with their defaults applied and checked. */
export interface InterceptorSettings {
  readonly store: IdempotencyStore;
  readonly scope: (req: UnaryRequest) => string | Promise<string>;
  readonly retentionMs: number;
  readonly leaseMs: number;
  readonly leaseGraceMs: number;
  readonly maxWaitMs: number;
  readonly dispositions: ReadonlyMap<Code, ErrorDisposition>;
  readonly maxStoredBytes: number;
  readonly onEvent: ((event: IdempotencyEvent) => void) | undefined;
  /**
   * Whether `onEvent` would do anything with an event emitted now: false
   * while only the default telemetry listens and no SDK records. The
   * interceptor then builds no event.
   */
  readonly listening: () => boolean;
  readonly extensions: IdempotencyExtensions;
  readonly compressions: readonly string[];
}

const hour = 60 * 60 * 1000;

/** How long a completed request ID is remembered unless configured: 24 h. */
export const defaultRetentionMs = 24 * hour;
/** How long a claim holds without renewal unless configured: 30 s. */
export const defaultLeaseMs = 30_000;
/** The shortest lease accepted: 1 s. */
export const minLeaseMs = 1_000;
/** How long past its lease a claim still counts as held unless configured: 2 s. */
export const defaultLeaseGraceMs = 2_000;
/**
 * How often a pending completion, interruption or renewal is retried while
 * the store fails: short, so that an owner whose store comes back writes
 * first, well within the lease grace.
 */
export const storeRetryMs = 250;
/** How long a duplicate waits for a running execution unless configured: 5 s. */
export const defaultMaxWaitMs = 5_000;
/** The largest outcome stored unless configured: 4 MiB. */
export const defaultMaxStoredBytes = 4 * 1024 * 1024;

/** Applies the defaults; throws on a value that cannot work. */
export function resolveInterceptorOptions(options: IdempotencyInterceptorOptions): InterceptorSettings {
  const leaseMs = resolveLease(options.lease ?? defaultLeaseMs, options.store);
  const leaseGraceMs = positive("leaseGrace", options.leaseGrace ?? defaultLeaseGraceMs, "milliseconds");
  if (leaseGraceMs < 2 * storeRetryMs) {
    throw new Error(
      `idempotency interceptor: leaseGrace must be at least ${2 * storeRetryMs} ms (twice the ${storeRetryMs} ms at which an owner retries the store), got ${leaseGraceMs}`,
    );
  }
  return {
    store: options.store,
    scope: options.scope ?? (() => ""),
    retentionMs: positive("retention", options.retention ?? defaultRetentionMs, "milliseconds"),
    leaseMs,
    leaseGraceMs,
    maxWaitMs: nonNegative("maxWait", options.maxWait ?? defaultMaxWaitMs),
    dispositions: resolveCodeDispositions(options),
    maxStoredBytes: positive("maxStoredBytes", options.maxStoredBytes ?? defaultMaxStoredBytes, "bytes"),
    ...combineListeners(
      options.telemetry === false ? undefined : (options.telemetry ?? createIdempotencyTelemetry()),
      options.onEvent,
    ),
    extensions: options.extensions ?? runtimeExtensions,
    compressions: (options.acceptCompression ?? [{ name: "gzip" }, { name: "br" }]).map((c) => c.name),
  };
}

/**
 * A lease renewals can keep: at least `minLeaseMs`, and at least three times
 * the longest wait during which the store blocks the process. Renewals run
 * every third of the lease; one held up by such a wait must still land
 * before the lease ends.
 */
function resolveLease(leaseMs: number, store: IdempotencyStore | undefined): number {
  positive("lease", leaseMs, "milliseconds");
  if (leaseMs < minLeaseMs) {
    throw new Error(
      `idempotency interceptor: lease must be at least ${minLeaseMs} ms, got ${leaseMs}: a shorter lease ends before a ` +
        "renewal can reach the store, and every retry would take over a live execution. Use seconds, not less",
    );
  }
  const blockingWaitMs = typeof store === "object" && store !== null ? (store.blockingWaitMs ?? 0) : 0;
  if (leaseMs < 3 * blockingWaitMs) {
    throw new Error(
      `idempotency interceptor: lease ${leaseMs} ms is too short for a store that can block the process for ` +
        `${blockingWaitMs} ms (the SQLite store's busyTimeoutMs): no renewal runs during such a wait, so another ` +
        `process could take over a live execution. Use a lease of at least ${3 * blockingWaitMs} ms, or a shorter busyTimeoutMs`,
    );
  }
  return leaseMs;
}

function positive(name: string, value: number, unit: string): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`idempotency interceptor: ${name} must be a positive number of ${unit}, got ${value}`);
  }
  return value;
}

function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) {
    throw new Error(`idempotency interceptor: ${name} must be zero or a positive number of milliseconds, got ${value}`);
  }
  return value;
}

const always = () => true;
const never = () => false;

// The user's listener runs even when telemetry throws, and sees every event.
function combineListeners(
  telemetry: IdempotencyTelemetry | undefined,
  onEvent: ((event: IdempotencyEvent) => void) | undefined,
): Pick<InterceptorSettings, "onEvent" | "listening"> {
  if (telemetry === undefined) {
    return { onEvent, listening: onEvent === undefined ? never : always };
  }
  if (onEvent === undefined) {
    return { onEvent: telemetry, listening: telemetry.isRecording ?? always };
  }
  return {
    onEvent: (event) => {
      try {
        telemetry(event);
      } finally {
        onEvent(event);
      }
    },
    listening: always,
  };
}
