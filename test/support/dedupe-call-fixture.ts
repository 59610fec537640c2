import { randomUUID } from "node:crypto";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { createContextValues, type UnaryRequest, type UnaryResponse } from "@connectrpc/connect";
import { afterEach } from "vitest";
import {
  type CreatePaymentRequestSchema,
  CreatePaymentResponseSchema,
  PaymentService,
} from "../../gen/demo/v1/payments_pb.js";
import { createMethodPolicyCache } from "../../src/policy/method-policy.js";
import { claimKey } from "../../src/server/claim-key.js";
import type { DedupeCall } from "../../src/server/dedupe-call.js";
import { dedupeCallOf } from "../../src/server/dedupe-call-of.js";
import { type Execution, startExecution } from "../../src/server/execution.js";
import type { IdempotencyEvent } from "../../src/server/idempotency-event.js";
import { createInFlightWaiters, type InFlightWaiters } from "../../src/server/in-flight-waiters.js";
import {
  type IdempotencyInterceptorOptions,
  type InterceptorSettings,
  resolveInterceptorOptions,
} from "../../src/server/interceptor-options.js";
import { createPendingBudget, type PendingBudget } from "../../src/server/pending-budget.js";
import { createReplayCache, type ReplayCache } from "../../src/server/replay-cache.js";
import type { IdempotencyStore, OwnerInput, RecordKey } from "../../src/store/idempotency-store.js";
import { createSqliteStore, type SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { createManualClock, type ManualClock } from "./manual-clock.js";

/** The method the step specs deduplicate: `demo.v1.PaymentService/CreatePayment`, a UUID request ID. */
export const createPayment = PaymentService.method.createPayment;

/** The lease of the step specs: the shortest one accepted, so that renewals run every third of a second. */
export const stepLeaseMs = 1_000;

/** The lease grace of the step specs: the shortest one accepted. */
export const stepLeaseGraceMs = 500;

type PaymentInit = MessageInitShape<typeof CreatePaymentRequestSchema>;

/** Interceptor options of a step spec; the store is the harness's own. */
export type StepOptions = Omit<IdempotencyInterceptorOptions, "store">;

/**
 * What the interceptor builds once (settings, in-flight waiters, pending
 * budget, replay cache) over a real in-memory SQLite store whose clock
 * moves only when a test moves it, and a way to create the per-call objects
 * the steps take, exactly as the interceptor's `handleUnary` does.
 */
export interface StepHarness {
  /** The store the settings use: `raw`, or a wrapper around it (`wrap`). */
  readonly store: IdempotencyStore;
  /** The SQLite store itself, for reading records behind the interceptor's back. */
  readonly raw: SqliteStore;
  /** The store's clock. */
  readonly clock: ManualClock;
  readonly settings: InterceptorSettings;
  readonly inFlight: InFlightWaiters;
  readonly pending: PendingBudget;
  readonly replayCache: ReplayCache | undefined;
  /** Every event the settings' `onEvent` received, in order. */
  readonly events: IdempotencyEvent[];
  /**
   * A deduplicated call of CreatePayment with `init` on top of a fresh
   * request ID and a fixed payload: the request, its policy, and
   * `dedupeCallOf`, as the interceptor does.
   */
  call(init?: PaymentInit, options?: { signal?: AbortSignal }): Promise<DedupeCall>;
  /** The record of a call, read from the SQLite store. */
  record(call: DedupeCall): ReturnType<IdempotencyStore["get"]>;
  close(): Promise<void>;
}

/**
 * Opens a step harness. `wrap` puts a wrapper (a fault-injecting store, say)
 * between the steps and the SQLite store.
 */
export function openStepHarness(
  options: StepOptions = {},
  wrap: (store: SqliteStore) => IdempotencyStore = (store) => store,
): StepHarness {
  const clock = createManualClock();
  const raw = createSqliteStore({ path: ":memory:", sweepIntervalMs: 0, clock });
  return buildHarness(wrap(raw), raw, clock, options, () => raw.close());
}

/** A step harness whose store fails the operations named in `faults.failing`. */
export function openFaultyStepHarness(options: StepOptions = {}): StepHarness & { readonly faults: FaultyStore } {
  let faults: FaultyStore | undefined;
  const harness = openStepHarness(options, (raw) => (faults = faultyStore(raw)));
  return { ...harness, faults: faults! };
}

/** The harness of the current test and its executions, from `useStepHarness`. */
export interface StepHarnessUse {
  /** Opens the current test's harness (`openStepHarness`); the harness opened last is closed after the test. */
  open(options?: StepOptions, wrap?: (store: SqliteStore) => IdempotencyStore): StepHarness;
  /** Opens the current test's harness over a faulty store (`openFaultyStepHarness`). */
  openFaulty(options?: StepOptions): StepHarness & { readonly faults: FaultyStore };
  /**
   * Claims the call's key for `owner` and starts its execution, as
   * `runExecution` does before the handler runs; its lease keeper is
   * stopped after the test. Throws unless the claim is fresh.
   */
  start(call: DedupeCall, owner: string): Promise<Execution>;
}

/**
 * Gives each test of the calling file a step harness of its own: after the
 * test, the lease keepers of the executions it started with `start` stop
 * and the harness it opened last closes. Call it at the top of a file.
 */
export function useStepHarness(): StepHarnessUse {
  let harness: StepHarness | undefined;
  const executions: Execution[] = [];
  afterEach(async () => {
    for (const execution of executions.splice(0)) {
      execution.keeper.stop();
    }
    await harness?.close();
    harness = undefined;
  });
  return {
    open(options, wrap) {
      harness = openStepHarness(options, wrap);
      return harness;
    },
    openFaulty(options) {
      const faulty = openFaultyStepHarness(options);
      harness = faulty;
      return faulty;
    },
    async start(call, owner) {
      const claim = await claimKey(call, owner);
      if (claim.kind !== "claimed") {
        throw new Error(`expected a fresh claim, found ${claim.record.status}`);
      }
      const execution = startExecution(call, owner, claim.record, claim.replaced, call.claimSentAt);
      executions.push(execution);
      return execution;
    },
  };
}

/** Resolves after `ms` milliseconds of real time. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Another server process on the store of `harness`: its own settings,
 * in-flight executions and events, so that its calls claim and poll the
 * store rather than wait in memory for the executions of `harness`.
 * Closing it leaves the store open.
 */
export function openSecondProcess(harness: StepHarness, options: StepOptions = {}): StepHarness {
  return buildHarness(harness.store, harness.raw, harness.clock, options, async () => {});
}

function buildHarness(
  store: IdempotencyStore,
  raw: SqliteStore,
  clock: ManualClock,
  options: StepOptions,
  close: () => Promise<void>,
): StepHarness {
  const events: IdempotencyEvent[] = [];
  const settings = resolveInterceptorOptions({
    leaseMs: stepLeaseMs,
    leaseGraceMs: stepLeaseGraceMs,
    telemetry: false,
    onEvent: (event) => events.push(event),
    ...options,
    store,
  });
  // As createIdempotencyInterceptor builds them, once per interceptor.
  const policyOf = createMethodPolicyCache(settings.extensions);
  const inFlight = createInFlightWaiters();
  const pending = createPendingBudget(settings.maxPendingCompletions, settings.maxPendingBytes);
  const replayCache = settings.replayCache === undefined ? undefined : createReplayCache(settings.replayCache);
  return {
    store,
    raw,
    clock,
    settings,
    inFlight,
    pending,
    replayCache,
    events,
    async call(init = {}, callOptions = {}) {
      const req = paymentRequest(init, callOptions.signal);
      const policy = policyOf(req.method);
      if (policy.requestIdField === undefined) {
        throw new Error("CreatePayment has no request ID field");
      }
      const call = await dedupeCallOf(req, { settings, inFlight, pending, replayCache, policy });
      if (call === undefined) {
        throw new Error("the step specs deduplicate calls with a request ID; this one has none");
      }
      return call;
    },
    record(call) {
      return raw.get(call.record);
    },
    close,
  };
}

/** A CreatePayment request as connect hands it to an interceptor, over the Connect protocol in binary. */
export function paymentRequest(
  init: PaymentInit = {},
  signal: AbortSignal = new AbortController().signal,
): UnaryRequest {
  return {
    stream: false,
    service: PaymentService,
    method: createPayment,
    requestMethod: "POST",
    url: "http://localhost/demo.v1.PaymentService/CreatePayment",
    signal,
    header: new Headers({ "content-type": "application/proto" }),
    contextValues: createContextValues(),
    message: create(createPayment.input, {
      requestId: randomUUID(),
      accountId: "acct_1",
      amountMinor: 100n,
      currency: "EUR",
      ...init,
    }),
  } as UnaryRequest;
}

/** The response a CreatePayment handler returns, with a handler header and trailer. */
export function paymentResponse(paymentId: string): UnaryResponse {
  return {
    stream: false,
    service: PaymentService,
    method: createPayment,
    header: new Headers({ "x-handler": "h" }),
    trailer: new Headers({ "x-trailer": "t" }),
    message: create(CreatePaymentResponseSchema, { payment: { paymentId } }),
  } as UnaryResponse;
}

/** The payment ID of a CreatePayment response. */
export function paymentIdOf(response: UnaryResponse): string | undefined {
  return (response.message as { payment?: { paymentId: string } }).payment?.paymentId;
}

/** Store operations that a `faultyStore` can fail. */
export type FaultyOperation = "claim" | "complete" | "interrupt" | "release" | "renew" | "get";

/**
 * A real store whose operations reject on demand: `failing` holds the
 * operations that reject (with `failure`) until removed from it.
 */
export interface FaultyStore extends IdempotencyStore {
  readonly failing: Set<FaultyOperation>;
  readonly failure: Error;
}

/** Wraps `inner` so that operations named in `failing` reject. */
export function faultyStore(inner: IdempotencyStore): FaultyStore {
  const failing = new Set<FaultyOperation>();
  const failure = new Error("SQLITE_BUSY: database is locked");
  const guard =
    <A, R>(name: FaultyOperation, fn: (input: A) => Promise<R>) =>
    (input: A): Promise<R> =>
      failing.has(name) ? Promise.reject(failure) : fn(input);
  return {
    blockingWaitMs: inner.blockingWaitMs,
    failing,
    failure,
    claim: guard("claim", inner.claim),
    complete: guard("complete", inner.complete),
    interrupt: guard("interrupt", inner.interrupt),
    release: guard("release", inner.release),
    renew: guard("renew", inner.renew),
    get: guard<RecordKey, Awaited<ReturnType<IdempotencyStore["get"]>>>("get", inner.get),
    sweep: (input) => inner.sweep(input),
    close: () => inner.close(),
  };
}

/** The owner and attempt of a record, to write to it as its claim's execution would. */
export function ownerOf(key: RecordKey, record: { owner: string; attempt: number }): OwnerInput {
  return { key, owner: record.owner, attempt: record.attempt };
}
