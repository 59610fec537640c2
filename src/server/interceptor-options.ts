import type { Code, UnaryRequest } from "@connectrpc/connect";
import type { IdempotencyExtensions } from "../policy/idempotency-extensions.js";
import { runtimeExtensions } from "../policy/runtime-extensions.js";
import type { IdempotencyStore } from "../store/idempotency-store.js";
import { resolveReleasedCodes } from "./error-disposition.js";
import { createIdempotencyTelemetry, type IdempotencyTelemetry } from "../otel/idempotency-telemetry.js";
import type { IdempotencyEvent } from "./idempotency-event.js";

/** A source of the current time in milliseconds since the epoch. */
export interface IdempotencyClock {
  now(): number;
}

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
   * next retry takes the key over once the lease has run out. Default 30 s.
   */
  readonly lease?: number;
  /**
   * How long a duplicate that arrives while the first call runs waits for
   * its outcome, in milliseconds, never beyond the call's deadline. After
   * that it fails with ABORTED, reason REQUEST_IN_PROGRESS. Default 5 s.
   */
  readonly maxWait?: number;
  /**
   * The codes whose errors are stored and replayed. Alone, it decides every
   * code: errors with other codes release the key. Default: see
   * `defaultStoredCodes`.
   */
  readonly storedCodes?: readonly Code[];
  /**
   * The codes whose errors release the key so that a retry runs again.
   * Alone, it decides every code: errors with other codes are stored. With
   * `storedCodes`, the two must not overlap and other codes are stored.
   * Default: see `defaultReleasedCodes`.
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
   * installs an SDK. `false` turns it off. See docs/operations.md.
   */
  readonly telemetry?: IdempotencyTelemetry | false;
  /** The time used for leases and expiry. Default `Date`. */
  readonly clock?: IdempotencyClock;
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
  readonly maxWaitMs: number;
  readonly releasedCodes: ReadonlySet<Code>;
  readonly maxStoredBytes: number;
  readonly onEvent: ((event: IdempotencyEvent) => void) | undefined;
  /**
   * Whether `onEvent` would do anything with an event emitted now: false
   * while only the default telemetry listens and no SDK records. The
   * interceptor then builds no event.
   */
  readonly listening: () => boolean;
  readonly clock: IdempotencyClock;
  readonly extensions: IdempotencyExtensions;
  readonly compressions: readonly string[];
}

const hour = 60 * 60 * 1000;

/** Applies the defaults; throws on a value that cannot work. */
export function resolveInterceptorOptions(options: IdempotencyInterceptorOptions): InterceptorSettings {
  return {
    store: options.store,
    scope: options.scope ?? (() => ""),
    retentionMs: positive("retention", options.retention ?? 24 * hour, "milliseconds"),
    leaseMs: positive("lease", options.lease ?? 30_000, "milliseconds"),
    maxWaitMs: nonNegative("maxWait", options.maxWait ?? 5_000),
    releasedCodes: resolveReleasedCodes(options.storedCodes, options.releasedCodes),
    maxStoredBytes: positive("maxStoredBytes", options.maxStoredBytes ?? 4 * 1024 * 1024, "bytes"),
    ...combineListeners(
      options.telemetry === false ? undefined : (options.telemetry ?? createIdempotencyTelemetry()),
      options.onEvent,
    ),
    clock: options.clock ?? Date,
    extensions: options.extensions ?? runtimeExtensions,
    compressions: (options.acceptCompression ?? [{ name: "gzip" }, { name: "br" }]).map((c) => c.name),
  };
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
