import type { Code, UnaryRequest } from "@connectrpc/connect";
import type { IdempotencyExtensions } from "../policy/idempotency-extensions.js";
import { runtimeExtensions } from "../policy/runtime-extensions.js";
import type { IdempotencyStore } from "../store/idempotency-store.js";
import { type ErrorDisposition, resolveCodeDispositions } from "./error-disposition.js";
import { createIdempotencyTelemetry, type IdempotencyTelemetry } from "../otel/idempotency-telemetry.js";
import type { IdempotencyEvent } from "./idempotency-event.js";
import { createRecordKeyHasher, type RecordKeyHasher } from "./key-hash.js";
import type { ReplayCacheOptions } from "./replay-cache.js";

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
   *
   * It must return a string. When it returns anything else (typically
   * `undefined`, because it reads a context value that an interceptor after
   * this one sets), the call fails with INTERNAL, reason SCOPE_INVALID: put
   * the auth interceptor before the idempotency interceptor. A ConnectError
   * it throws (say, UNAUTHENTICATED) reaches the client as it is; anything
   * else it throws fails the call with INTERNAL, reason SCOPE_FAILED.
   */
  readonly scope?: (req: UnaryRequest) => string | Promise<string>;
  /**
   * How long a completed request ID's outcome is replayed, in
   * milliseconds (a tombstone may keep the ID taken longer:
   * `tombstoneRetentionMs`). A method's `(idempotency.v1.policy).retention`
   * overrides it. Default `defaultRetentionMs` (24 h), at most
   * `maxRetentionMs` (100 years).
   */
  readonly retentionMs?: number;
  /**
   * How long, in milliseconds, a completed request ID stays taken after its
   * retention (the replay window) ends, as a tombstone: the stored response
   * is dropped, and a late duplicate with the same payload gets
   * FAILED_PRECONDITION with reason REQUEST_ID_EXPIRED (another payload,
   * REQUEST_ID_REUSED) instead of running again. A method's
   * `(idempotency.v1.policy).tombstone_retention` overrides it. Default
   * `defaultTombstoneRetentionMs` (30 days); 0 keeps no tombstones, and a
   * key is free once its retention ends.
   */
  readonly tombstoneRetentionMs?: number;
  /**
   * How long a claim holds without renewal, in milliseconds. A running
   * handler renews it every third of the lease; when its process dies, the
   * next retry takes the key over once the lease and `leaseGraceMs` have run
   * out. At least `minLeaseMs` (1 s), and at least 3 times the store's
   * longest blocking wait (`blockingWaitMs`), during which no renewal can
   * run. Default `defaultLeaseMs` (30 s).
   */
  readonly leaseMs?: number;
  /**
   * How long past the end of a lease a claim still counts as held, in
   * milliseconds: a takeover needs the lease plus this. An owner whose
   * renewals or completion were held up by a store outage retries every
   * 250 ms once the store answers again, so with a grace longer than that it
   * wins against a retry that arrives at the same moment. An interrupted
   * claim (an indefinite error) is taken over at once. Default
   * `defaultLeaseGraceMs` (2 s).
   */
  readonly leaseGraceMs?: number;
  /**
   * How long a duplicate that arrives while the first call runs waits for
   * its outcome, in milliseconds, never beyond the call's deadline. After
   * that it fails with ABORTED, reason REQUEST_IN_PROGRESS. Default
   * `defaultMaxWaitMs` (5 s).
   */
  readonly maxWaitMs?: number;
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
   * are deleted and a retry runs afresh. Default: `defaultReleasedCodes`
   * (UNAUTHENTICATED and PERMISSION_DENIED, refusals of who the caller is);
   * a handler marks one error with `releaseOnError` instead.
   */
  readonly releasedCodes?: readonly Code[];
  /**
   * The largest encoded outcome stored, in bytes. The caller of a larger
   * response still gets it, but the store keeps a FAILED_PRECONDITION error
   * with reason RESPONSE_TOO_LARGE, so that a retry learns the call already
   * ran instead of running it again. Default 4 MiB.
   */
  readonly maxStoredBytes?: number;
  /**
   * How many completed outcomes may wait in memory for their write to the
   * store (while the store refuses writes) at once. Past it, an outcome is
   * dropped from memory (event `completion_dropped`): its claim is no longer
   * renewed, so a retry takes it over after the lease and grace, as a new
   * attempt that knows (`takeover: true`). Default 1,000.
   */
  readonly maxPendingCompletions?: number;
  /** The bytes of outcomes that may wait in memory for their write, as `maxPendingCompletions`. Default 64 MiB. */
  readonly maxPendingBytes?: number;
  /**
   * The secret of the keyed hash (HMAC-SHA-256) that events carry instead of
   * request IDs (`keyHash`). Give every process of a deployment the same
   * secret to correlate their events. Default: a random secret per
   * interceptor, so hashes match only within one process.
   */
  readonly keyHashSecret?: string | Uint8Array;
  /** Receives every decision, for logs and metrics. Must not throw. */
  readonly onEvent?: (event: IdempotencyEvent) => void;
  /**
   * Turns every decision into OpenTelemetry metrics and span attributes,
   * before `onEvent` sees it. Default: `createIdempotencyTelemetry()` on the
   * global providers of `@opentelemetry/api`, a no-op until the application
   * installs an SDK. `false` turns it off. See docs/operations.md.
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
  /**
   * What a duplicate of a completed call gets when its method sets no
   * `(idempotency.v1.policy).on_duplicate`: `"replay"` (the default), the
   * stored response marked `idempotency-replayed: true`; or `"reject"`,
   * ALREADY_EXISTS with reason REQUEST_ID_ALREADY_EXECUTED, the time of the
   * first execution and the resource name the handler set
   * (`setExecutedResourceName`), and no response body is stored. A stored
   * error is replayed in both modes.
   */
  readonly onDuplicate?: "replay" | "reject";
  /**
   * Keeps completed outcomes of this process in memory, bounded by
   * `maxBytes`, so that a duplicate of a recently completed call is replayed
   * without a store call: same scope, method and request ID, and the same
   * payload (another payload still gets REQUEST_ID_REUSED), for at most
   * `ttlMs` and never past the record's expiry. The price: a record evicted
   * through the CLI or the admin API may still be replayed by a process
   * that cached it, for at most `ttlMs`. Default `false` (off), so that an
   * eviction takes effect at once. See docs/server-interceptor.md.
   */
  readonly replayCache?: ReplayCacheOptions | false;
}

/** The options with their defaults applied and checked. */
export interface InterceptorSettings {
  readonly store: IdempotencyStore;
  readonly scope: (req: UnaryRequest) => string | Promise<string>;
  readonly retentionMs: number;
  readonly tombstoneRetentionMs: number;
  readonly leaseMs: number;
  readonly leaseGraceMs: number;
  readonly maxWaitMs: number;
  readonly dispositions: ReadonlyMap<Code, ErrorDisposition>;
  readonly maxStoredBytes: number;
  readonly maxPendingCompletions: number;
  readonly maxPendingBytes: number;
  readonly hashKey: RecordKeyHasher;
  readonly onEvent: ((event: IdempotencyEvent) => void) | undefined;
  /**
   * Whether `onEvent` would do anything with an event emitted now: false
   * while only the default telemetry listens and no SDK records. The
   * interceptor then builds no event.
   */
  readonly listening: () => boolean;
  readonly extensions: IdempotencyExtensions;
  readonly compressions: readonly string[];
  readonly onDuplicate: "replay" | "reject";
  /** The replay cache's sizes, or undefined when it is off. */
  readonly replayCache: ReplayCacheOptions | undefined;
}

const hour = 60 * 60 * 1000;

/**
 * The default `retentionMs`: 24 hours, the replay window of a completed
 * request ID, as long as Stripe keeps its idempotency keys: retries across
 * an outage of hours still replay, and a day of stored responses stays small.
 */
export const defaultRetentionMs = 24 * hour;
/**
 * The default `tombstoneRetentionMs`: 30 days that a completed request ID
 * stays taken after its replay window, without its response. A request ID
 * replayed from a queue or a backup weeks later is refused
 * (REQUEST_ID_EXPIRED) instead of run twice, for the price of a row
 * without its response.
 */
export const defaultTombstoneRetentionMs = 30 * 24 * hour;
/**
 * The default `leaseMs`: 30 seconds a claim holds without renewal. Long
 * enough for renewals (every 10 s) to ride out a GC pause or a slow store,
 * short enough that a retry takes over from a dead process within a minute.
 */
export const defaultLeaseMs = 30_000;
/**
 * The shortest `leaseMs` accepted: 1 s. A shorter lease ends before a
 * renewal can reach the store, and every retry would take over a live
 * execution.
 */
export const minLeaseMs = 1_000;
/**
 * The default `leaseGraceMs`: 2 seconds past its lease a claim still counts
 * as held, eight times `storeRetryMs`, so that an owner whose store comes
 * back writes before a retry takes over.
 */
export const defaultLeaseGraceMs = 2_000;
/**
 * How often a pending completion, interruption or renewal is retried while
 * the store fails: short, so that an owner whose store comes back writes
 * first, well within the lease grace.
 */
export const storeRetryMs = 250;
/**
 * The default `maxWaitMs`: 5 seconds a duplicate waits for a running
 * execution, never past its deadline. Most handlers finish within it, so
 * the duplicate gets the outcome instead of REQUEST_IN_PROGRESS, and a
 * client's retry is not held much longer than its own timeout would be.
 */
export const defaultMaxWaitMs = 5_000;
/**
 * The default `maxStoredBytes`: 4 MiB, gRPC's default largest message, so
 * that every response a gRPC server can send by default is stored.
 */
export const defaultMaxStoredBytes = 4 * 1024 * 1024;
/** The longest retention accepted: 100 years, far inside what every store's times can hold. */
export const maxRetentionMs = 100 * 365 * 24 * hour;
/**
 * The default `maxPendingCompletions`: 1,000 outcomes waiting in memory for
 * their write while the store refuses writes: a short outage loses none,
 * and a long one cannot hold unbounded memory.
 */
export const defaultMaxPendingCompletions = 1_000;
/** The default `maxPendingBytes`: 64 MiB of outcomes waiting in memory for their write, as `defaultMaxPendingCompletions`. */
export const defaultMaxPendingBytes = 64 * 1024 * 1024;
/**
 * The default `acceptCompression`: the names of connect-node's default
 * compressions, in its order, so that replays negotiate as its responses do.
 */
export const defaultAcceptCompression: readonly string[] = ["gzip", "br"];

// Every option name, to refuse a misspelled one rather than ignore it.
const optionNames: ReadonlySet<string> = new Set<keyof IdempotencyInterceptorOptions>([
  "store",
  "scope",
  "retentionMs",
  "tombstoneRetentionMs",
  "leaseMs",
  "leaseGraceMs",
  "maxWaitMs",
  "storedCodes",
  "indefiniteCodes",
  "releasedCodes",
  "maxStoredBytes",
  "maxPendingCompletions",
  "maxPendingBytes",
  "keyHashSecret",
  "onEvent",
  "telemetry",
  "extensions",
  "acceptCompression",
  "onDuplicate",
  "replayCache",
]);

// The names of 0.1, which had no unit, and what they became in 0.2; passing
// one throws with its new name rather than keep the default silently.
const renamedOptions: ReadonlyMap<string, string> = new Map([
  ["retention", "retentionMs"],
  ["tombstoneRetention", "tombstoneRetentionMs"],
  ["lease", "leaseMs"],
  ["leaseGrace", "leaseGraceMs"],
  ["maxWait", "maxWaitMs"],
]);

const storeMethods = ["claim", "complete", "interrupt", "release", "renew", "get", "sweep", "close"] as const;

/** Applies the defaults; throws on a value that cannot work. */
export function resolveInterceptorOptions(options: IdempotencyInterceptorOptions): InterceptorSettings {
  checkOptionNames(options);
  checkStore(options.store);
  if (options.scope !== undefined && typeof options.scope !== "function") {
    throw new Error(
      `createIdempotencyInterceptor: scope must be a function of the request, got ${typeof options.scope}`,
    );
  }
  const retentionMs = positive("retentionMs", options.retentionMs ?? defaultRetentionMs, "milliseconds");
  if (retentionMs > maxRetentionMs) {
    throw new Error(
      `createIdempotencyInterceptor: retentionMs must be at most ${maxRetentionMs} ms (100 years), got ${retentionMs}: ` +
        "the stores keep times as milliseconds since the epoch, and such an expiry is past what they can represent",
    );
  }
  const tombstoneRetentionMs = nonNegative(
    "tombstoneRetentionMs",
    options.tombstoneRetentionMs ?? defaultTombstoneRetentionMs,
    "milliseconds (0 keeps no tombstones)",
  );
  if (retentionMs + tombstoneRetentionMs > maxRetentionMs) {
    throw new Error(
      `createIdempotencyInterceptor: retentionMs plus tombstoneRetentionMs must be at most ${maxRetentionMs} ms (100 years), ` +
        `got ${retentionMs} + ${tombstoneRetentionMs}: the stores keep times as milliseconds since the epoch`,
    );
  }
  if (options.onDuplicate !== undefined && options.onDuplicate !== "replay" && options.onDuplicate !== "reject") {
    throw new Error(
      `createIdempotencyInterceptor: onDuplicate must be "replay" or "reject", got ${JSON.stringify(options.onDuplicate)}`,
    );
  }
  const leaseMs = resolveLease(options.leaseMs ?? defaultLeaseMs, options.store);
  const leaseGraceMs = positive("leaseGraceMs", options.leaseGraceMs ?? defaultLeaseGraceMs, "milliseconds");
  if (leaseGraceMs < 2 * storeRetryMs) {
    throw new Error(
      `createIdempotencyInterceptor: leaseGraceMs must be at least ${2 * storeRetryMs} ms (twice the ${storeRetryMs} ms at which an owner retries the store), got ${leaseGraceMs}`,
    );
  }
  return {
    store: options.store,
    scope: options.scope ?? (() => ""),
    retentionMs,
    tombstoneRetentionMs,
    leaseMs,
    leaseGraceMs,
    maxWaitMs: nonNegative("maxWaitMs", options.maxWaitMs ?? defaultMaxWaitMs, "milliseconds"),
    dispositions: resolveCodeDispositions(options),
    maxStoredBytes: positive("maxStoredBytes", options.maxStoredBytes ?? defaultMaxStoredBytes, "bytes"),
    maxPendingCompletions: nonNegative(
      "maxPendingCompletions",
      options.maxPendingCompletions ?? defaultMaxPendingCompletions,
      "outcomes",
    ),
    maxPendingBytes: nonNegative("maxPendingBytes", options.maxPendingBytes ?? defaultMaxPendingBytes, "bytes"),
    hashKey: createRecordKeyHasher(options.keyHashSecret),
    ...combineListeners(
      options.telemetry === false ? undefined : (options.telemetry ?? createIdempotencyTelemetry()),
      options.onEvent,
    ),
    extensions: options.extensions ?? runtimeExtensions,
    compressions: options.acceptCompression?.map((c) => c.name) ?? defaultAcceptCompression,
    onDuplicate: options.onDuplicate ?? "replay",
    replayCache: resolveReplayCache(options.replayCache),
  };
}

/** Checks the `replayCache` option: `false` or absent for off, or both sizes, positive. */
function resolveReplayCache(option: ReplayCacheOptions | false | undefined): ReplayCacheOptions | undefined {
  if (option === undefined || option === false) {
    return undefined;
  }
  if (typeof option !== "object" || option === null) {
    throw new Error(
      `createIdempotencyInterceptor: replayCache must be false or { maxBytes, ttlMs }, got ${String(option)}`,
    );
  }
  for (const name of Object.keys(option)) {
    if (name !== "maxBytes" && name !== "ttlMs") {
      throw new Error(
        `createIdempotencyInterceptor: unknown replayCache option ${JSON.stringify(name)}; known: maxBytes, ttlMs`,
      );
    }
  }
  if (option.maxBytes === undefined || option.ttlMs === undefined) {
    throw new Error(
      "createIdempotencyInterceptor: replayCache needs both maxBytes and ttlMs, such as { maxBytes: 16 * 1024 * 1024, ttlMs: 60_000 }",
    );
  }
  return {
    maxBytes: positive("replayCache.maxBytes", option.maxBytes, "bytes"),
    ttlMs: positive("replayCache.ttlMs", option.ttlMs, "milliseconds"),
  };
}

/**
 * A lease renewals can keep: at least `minLeaseMs`, and at least three times
 * the longest wait during which the store blocks the process. Renewals run
 * every third of the lease; one held up by such a wait must still land
 * before the lease ends.
 */
function resolveLease(leaseMs: number, store: IdempotencyStore | undefined): number {
  positive("leaseMs", leaseMs, "milliseconds");
  if (leaseMs < minLeaseMs) {
    throw new Error(
      `createIdempotencyInterceptor: leaseMs must be at least ${minLeaseMs} ms, got ${leaseMs}: a shorter lease ends before a ` +
        "renewal can reach the store, and every retry would take over a live execution. Use seconds, not less",
    );
  }
  const blockingWaitMs = typeof store === "object" && store !== null ? (store.blockingWaitMs ?? 0) : 0;
  if (leaseMs < 3 * blockingWaitMs) {
    throw new Error(
      `createIdempotencyInterceptor: leaseMs ${leaseMs} is too short for a store that can block the process for ` +
        `${blockingWaitMs} ms (its blockingWaitMs, the longest synchronous wait of one operation): no renewal runs ` +
        `during such a wait, so another process could take over a live execution. Use a leaseMs of at least ` +
        `${3 * blockingWaitMs} ms`,
    );
  }
  return leaseMs;
}

function positive(name: string, value: number, unit: string): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`createIdempotencyInterceptor: ${name} must be a positive number of ${unit}, got ${value}`);
  }
  return value;
}

function nonNegative(name: string, value: number, unit: string): number {
  if (!Number.isFinite(value) || value < 0) {
    throw new Error(`createIdempotencyInterceptor: ${name} must be zero or a positive number of ${unit}, got ${value}`);
  }
  return value;
}

function checkOptionNames(options: IdempotencyInterceptorOptions): void {
  if (typeof options !== "object" || options === null) {
    throw new Error("createIdempotencyInterceptor: pass an options object, such as { store }");
  }
  for (const name of Object.keys(options)) {
    const renamed = renamedOptions.get(name);
    if (renamed !== undefined) {
      throw new Error(
        `createIdempotencyInterceptor: option ${JSON.stringify(name)} was renamed ${JSON.stringify(renamed)} (milliseconds) in 0.2`,
      );
    }
    if (!optionNames.has(name)) {
      throw new Error(
        `createIdempotencyInterceptor: unknown option ${JSON.stringify(name)}. Known options: ${[...optionNames].join(", ")}`,
      );
    }
  }
}

function checkStore(store: unknown): asserts store is IdempotencyStore {
  if (store === undefined || store === null) {
    throw new Error(
      'createIdempotencyInterceptor: the store option is missing; pass a store such as createSqliteStore({ path: "idempotency.db" })',
    );
  }
  if (typeof (store as { then?: unknown }).then === "function") {
    throw new Error(
      "createIdempotencyInterceptor: store is a Promise; did you forget `await createPostgresStore(...)`?",
    );
  }
  const missing = storeMethods.filter((method) => typeof (store as Record<string, unknown>)[method] !== "function");
  if (missing.length > 0) {
    throw new Error(
      `createIdempotencyInterceptor: store is not an IdempotencyStore: it lacks ${missing.join(", ")}; ` +
        "pass createSqliteStore(...) or await createPostgresStore(...)",
    );
  }
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
