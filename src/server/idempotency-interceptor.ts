import { randomUUID } from "node:crypto";
import { type DescField, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor, type UnaryRequest, type UnaryResponse } from "@connectrpc/connect";
import { ErrorReason } from "../errors/error-reason.js";
import { createIdempotencyError } from "../errors/idempotency-error.js";
import { createMethodPolicyCache, type MethodIdempotencyPolicy } from "../policy/method-policy.js";
import { canonicalizeRequestId } from "../policy/request-id-format.js";
import type { ClaimResult, RecordKey } from "../store/idempotency-store.js";
import { type AtomicClaim, type CommittedOutcome, type StoredForm, atomicClaimKey } from "./atomic-effects.js";
import { sleep } from "./bounded-wait.js";
import { errorAsClientSees, errorDisposition } from "./error-disposition.js";
import { createIdempotencyContextValue, idempotencyContext } from "./idempotency-context.js";
import type { IdempotencyEvent, IdempotencyEventType, StoreCall, StoreOperation } from "./idempotency-event.js";
import { createInFlightWaiters, type InFlightOwner, type InFlightResult } from "./in-flight-waiters.js";
import { type IdempotencyInterceptorOptions, resolveInterceptorOptions } from "./interceptor-options.js";
import { hashRecordKey } from "./key-hash.js";
import { type LeaseKeeper, startLeaseKeeper } from "./lease-keeper.js";
import { replayedHeader } from "./protocol-headers.js";
import { createReplayResponse } from "./replay-response.js";
import { fingerprintRequest } from "./request-fingerprint.js";
import { decodeStoredOutcome, encodeStoredOutcome, type StoredOutcomeValue } from "./stored-outcome.js";

// Polling a store for an execution in another process: start fast, because
// most handlers finish in milliseconds, and back off to spare the store.
const firstPollMs = 5;
const maxPollMs = 250;
// Retrying a failed completion write in the background.
const firstCompletionRetryMs = 100;
const maxCompletionRetryMs = 5_000;
// What REQUEST_IN_PROGRESS suggests in its RetryInfo.
const inProgressRetryDelayMs = 1_000;

/**
 * Creates a Connect server interceptor that runs each mutating unary call
 * once per request ID.
 *
 * Calls whose request message has a request ID field (`(idempotency.v1.request_id)`
 * or `(google.api.field_info).format = UUID4`) and a non-empty ID are
 * deduplicated by (scope, method, request ID): the first call claims the key
 * in the store and runs the handler; its outcome (response or error, with the
 * handler's headers and trailers) is stored. A duplicate with the same
 * payload gets the stored outcome with `idempotency-replayed: true` and the
 * handler does not run; a duplicate with another payload fails with
 * FAILED_PRECONDITION (REQUEST_ID_REUSED); a duplicate arriving while the
 * first runs waits for its outcome up to `maxWait`. Every other call,
 * streaming calls included, passes through untouched. See docs/server-interceptor.md.
 */
export function createIdempotencyInterceptor(options: IdempotencyInterceptorOptions): Interceptor {
  const settings = resolveInterceptorOptions(options);
  const { store, clock } = settings;
  const policyOf = createMethodPolicyCache(settings.extensions);
  const inFlight = createInFlightWaiters();

  // Calls that are never deduplicated go straight to `next`, without an
  // extra async step.
  return (next) => (req) => {
    if (req.stream) {
      return next(req);
    }
    const policy = policyOf(req.method);
    const field = policy.requestIdField;
    if (field === undefined) {
      return next(req);
    }
    return handle(req, policy, field, next as (req: UnaryRequest) => Promise<UnaryResponse>);
  };

  /** Checks the request ID, then deduplicates; calls with an empty ID run as they are. */
  async function handle(
    req: UnaryRequest,
    policy: MethodIdempotencyPolicy,
    field: DescField,
    next: (req: UnaryRequest) => Promise<UnaryResponse>,
  ): Promise<UnaryResponse> {
    const key = requestIdOf(req, policy, field);
    if (key === undefined) {
      return next(req);
    }
    const scope = settings.scope(req);
    const retentionMs = policy.retentionMs ?? settings.retentionMs;
    const call = createCall(req, field, typeof scope === "string" ? scope : await scope, key, retentionMs);
    return deduplicate(call, next);
  }

  /**
   * Claims the key and runs the handler, or answers from the record that
   * holds the key: replay it, refuse it, or wait for it. A wait that ends
   * with the key released (or its owner dead) loops back to the claim.
   */
  async function deduplicate(
    call: DedupeCall,
    next: (req: UnaryRequest) => Promise<UnaryResponse>,
  ): Promise<UnaryResponse> {
    for (;;) {
      const local = inFlight.find(call.id);
      if (local !== undefined) {
        if (local.fingerprint !== call.fingerprint) {
          throw mismatch(call);
        }
        const result = await waitFor(call, (ms) => local.wait(ms, call.req.signal));
        if (result.kind === "outcome") {
          return replay(call, result.outcome);
        }
        continue;
      }
      const owner = randomUUID();
      const claim = await claimKey(call, owner);
      if (claim.kind === "claimed") {
        return execute(call, claim, owner, next);
      }
      const { record } = claim;
      if (record.fingerprint !== call.fingerprint) {
        throw mismatch(call);
      }
      if (record.status === "completed") {
        return replay(call, record.outcome ?? new Uint8Array(0));
      }
      if (inFlight.find(call.id) !== undefined) {
        // The owner runs in this process after all: wait without polling.
        continue;
      }
      const result = await waitFor(call, (ms) => pollRecord(call, ms));
      if (result.kind === "outcome") {
        return replay(call, result.outcome);
      }
    }
  }

  /** Runs the handler under a claim, then stores or releases its outcome. */
  async function execute(
    call: DedupeCall,
    claim: ClaimResult & { kind: "claimed" },
    owner: string,
    next: (req: UnaryRequest) => Promise<UnaryResponse>,
  ): Promise<UnaryResponse> {
    const running = inFlight.begin(call.id, call.fingerprint);
    emit(call, claim.replaced === "none" ? "claimed" : claim.replaced);
    const execution: Execution = {
      owner,
      running,
      keeper: keepLease(call, owner, () => claimLost(call, execution, "renew")),
      lost: false,
    };
    call.req.contextValues.set(
      idempotencyContext,
      createIdempotencyContextValue({
        key: call.record.key,
        scope: call.record.scope,
        method: call.record.method,
        takeover: claim.replaced === "takeover",
      }),
    );
    const atomic: AtomicClaim = {
      store,
      key: call.record,
      owner,
      now: () => clock.now(),
      retentionMs: call.retentionMs,
      storeCall: (operation, run) => storeCall(call, operation, run),
      claimLost: (operation) => claimLost(call, execution, operation),
      storedForm: (outcome) => storedForm(call, { bytes: outcome, code: undefined }),
      committed: undefined,
    };
    call.req.contextValues.set(atomicClaimKey, atomic);
    let response: UnaryResponse;
    try {
      response = await next(call.req);
    } catch (thrown) {
      if (atomic.committed !== undefined) {
        return answerCommitted(call, execution, atomic.committed);
      }
      const error = errorAsClientSees(thrown, call.req.signal);
      if (errorDisposition(thrown, error, settings.releasedCodes) === "release") {
        await releaseKey(call, execution);
        emit(call, "released", { code: error.code });
      } else {
        await storeOutcome(call, execution, () => ({ kind: "error", error }));
      }
      throw thrown;
    }
    if (atomic.committed !== undefined) {
      return answerCommitted(call, execution, atomic.committed);
    }
    await storeOutcome(call, execution, () => ({
      kind: "response",
      response: toBinary(call.req.method.output, response.message),
      header: response.header,
      trailer: response.trailer,
    }));
    return response;
  }

  /**
   * Stores the outcome, then wakes the duplicates waiting in this process.
   * When the write fails, the caller still gets its answer: the write is
   * retried in the background while the lease keeper keeps the claim, so
   * that nobody takes over an execution that did happen.
   */
  async function storeOutcome(
    call: DedupeCall,
    execution: Execution,
    outcome: () => StoredOutcomeValue,
  ): Promise<void> {
    const { bytes, code } = storedForm(call, encodeOutcome(outcome));
    const retryLater = await completeOnce(call, execution, bytes, code);
    // After a lost claim the store holds the successor's outcome: waiters
    // go back to the store for it rather than take this one.
    execution.running.settle(execution.lost ? { kind: "released" } : { kind: "outcome", outcome: bytes });
    if (retryLater) {
      retryCompletion(call, execution, bytes, code, 0);
    }
  }

  /**
   * Retries a failed completion write after a backoff, until it no longer
   * asks to. A function of its own, so that the common path, where the
   * write succeeds, allocates no retry closure.
   */
  function retryCompletion(
    call: DedupeCall,
    execution: Execution,
    outcome: Uint8Array,
    code: Code | undefined,
    attempt: number,
  ): void {
    const delay = Math.min(firstCompletionRetryMs * 2 ** attempt, maxCompletionRetryMs);
    setTimeout(() => {
      void completeOnce(call, execution, outcome, code).then((again) => {
        if (again) {
          retryCompletion(call, execution, outcome, code, attempt + 1);
        }
      });
    }, delay).unref();
  }

  /**
   * What the store keeps for an encoded outcome: the outcome itself, or when
   * it is larger than `maxStoredBytes` a RESPONSE_TOO_LARGE error, so that a
   * retry learns that the call already ran instead of running it again.
   */
  function storedForm(call: DedupeCall, encoded: StoredForm): StoredForm {
    if (encoded.bytes.byteLength <= settings.maxStoredBytes) {
      return encoded;
    }
    emit(call, "too_large", { responseBytes: encoded.bytes.byteLength });
    const tooLarge = createIdempotencyError(
      Code.FailedPrecondition,
      ErrorReason.RESPONSE_TOO_LARGE,
      `the request with this request ID already ran, but its outcome (${encoded.bytes.byteLength} bytes) is larger ` +
        `than the idempotency store keeps (${settings.maxStoredBytes} bytes) and cannot be replayed; ` +
        "it was not run again",
      {
        metadata: {
          outcome_bytes: String(encoded.bytes.byteLength),
          max_stored_bytes: String(settings.maxStoredBytes),
        },
      },
    );
    return { bytes: encodeStoredOutcome({ kind: "error", error: tooLarge }), code: tooLarge.code };
  }

  /**
   * Answers with what the handler's `commit` stored together with its own
   * writes. The key is complete already, so it is not completed again, and
   * the client gets exactly the committed response, whatever the handler did
   * after the commit; the protocol's headers are built as for a replay.
   */
  function answerCommitted(
    call: DedupeCall,
    execution: Execution,
    committed: CommittedOutcome,
  ): UnaryResponse {
    execution.keeper.stop();
    execution.running.settle({ kind: "outcome", outcome: committed.stored.bytes });
    emit(call, "completed", { code: committed.stored.code });
    const outcome = decodeStoredOutcome(committed.outcome);
    if (outcome.kind === "error") {
      throw outcome.error;
    }
    const response = createReplayResponse(
      call.req,
      fromBinary(call.req.method.output, outcome.response),
      outcome.header,
      outcome.trailer,
      settings.compressions,
    );
    response.header.delete(replayedHeader);
    // connect copies returned headers into the call's own with a loop that
    // deletes while it iterates, and so keeps every other name the handler
    // set after the commit. Answering with the call's own objects, refilled,
    // sends exactly the committed ones.
    return {
      ...response,
      header: refill(committed.responseHeader, response.header),
      trailer: refill(committed.responseTrailer, response.trailer),
    };
  }

  /**
   * Runs a store operation of the handler's atomic effects: timed, and
   * reported when it fails (the handler's call then fails).
   */
  async function storeCall<T>(call: DedupeCall, operation: StoreOperation, run: () => Promise<T>): Promise<T> {
    try {
      return await timed(call, operation, run);
    } catch (error) {
      emit(call, "store_error", { operation, error, willRetry: false });
      throw error;
    }
  }

  /**
   * One attempt to write the outcome; true when it failed and is to be
   * retried. Retrying stops once the claim is lost, or past the claim's
   * expiry, when the record is fair game for the sweeper anyway. The lease
   * keeper runs as long as retries do.
   */
  async function completeOnce(
    call: DedupeCall,
    execution: Execution,
    outcome: Uint8Array,
    code: Code | undefined,
  ): Promise<boolean> {
    try {
      const now = clock.now();
      const stored = await timed(call, "complete", () =>
        store.complete({ key: call.record, owner: execution.owner, outcome, now, expiresAt: now + call.retentionMs }),
      );
      execution.keeper.stop();
      if (stored) {
        emit(call, "completed", { code });
      } else {
        claimLost(call, execution, "complete");
      }
      return false;
    } catch (error) {
      const willRetry = !execution.lost && clock.now() < call.claimExpiresAt;
      if (!willRetry) {
        execution.keeper.stop();
      }
      emit(call, "store_error", { operation: "complete", error, willRetry });
      return willRetry;
    }
  }

  /** Frees the key after a released error; a failed release leaves the lease to expire. */
  async function releaseKey(call: DedupeCall, execution: Execution): Promise<void> {
    execution.keeper.stop();
    try {
      await timed(call, "release", () => store.release({ key: call.record, owner: execution.owner }));
    } catch (error) {
      emit(call, "store_error", { operation: "release", error, willRetry: false });
    }
    execution.running.settle({ kind: "released" });
  }

  function keepLease(call: DedupeCall, owner: string, onLost: () => void): LeaseKeeper {
    return startLeaseKeeper({
      intervalMs: Math.max(1, Math.floor(settings.leaseMs / 3)),
      renew: () =>
        timed(call, "renew", () =>
          store.renew({ key: call.record, owner, leaseUntil: clock.now() + settings.leaseMs }),
        ),
      onError: (error) => emit(call, "store_error", { operation: "renew", error, willRetry: true }),
      onLost,
    });
  }

  function claimLost(call: DedupeCall, execution: Execution, operation: StoreOperation): void {
    if (!execution.lost) {
      execution.lost = true;
      emit(call, "claim_lost", { operation });
    }
  }

  /** Claims the key; fails closed with UNAVAILABLE when the store cannot answer. */
  async function claimKey(call: DedupeCall, owner: string): Promise<ClaimResult> {
    const now = clock.now();
    call.claimExpiresAt = now + Math.max(call.retentionMs, settings.leaseMs);
    try {
      return await timed(call, "claim", () =>
        store.claim({
          key: call.record,
          fingerprint: call.fingerprint,
          owner,
          now,
          leaseUntil: now + settings.leaseMs,
          expiresAt: call.claimExpiresAt,
        }),
      );
    } catch (error) {
      emit(call, "store_error", { operation: "claim", error, willRetry: false });
      throw createIdempotencyError(
        Code.Unavailable,
        ErrorReason.STORE_UNAVAILABLE,
        "the idempotency store is unavailable, so the request did not run; retry later",
      );
    }
  }

  /**
   * Waits for an execution that holds the key, sharing one `maxWait` budget
   * across the waits of a call. Fails with REQUEST_IN_PROGRESS when the
   * budget or the call's deadline runs out first.
   */
  async function waitFor(
    call: DedupeCall,
    wait: (timeoutMs: number) => Promise<InFlightResult | undefined>,
  ): Promise<InFlightResult> {
    const started = performance.now();
    call.waitUntil ??= started + settings.maxWaitMs;
    const result = await wait(call.waitUntil - started);
    emit(call, "waited", { waitedMs: performance.now() - started, waitResult: result?.kind ?? "timeout" });
    if (result === undefined) {
      emit(call, "conflict");
      throw createIdempotencyError(
        Code.Aborted,
        ErrorReason.REQUEST_IN_PROGRESS,
        "a request with this request ID is still running; retry when it has finished",
        { retryDelayMs: inProgressRetryDelayMs },
      );
    }
    return result;
  }

  /**
   * Polls the store for an execution in another process, with backoff.
   * Returns `released` when the key is free to claim again: deleted, taken
   * by another payload (the claim then refuses it), expired, or held by an
   * owner whose lease ran out.
   */
  async function pollRecord(call: DedupeCall, timeoutMs: number): Promise<InFlightResult | undefined> {
    const signal = call.req.signal;
    const until = performance.now() + timeoutMs;
    for (let delay = firstPollMs; ; delay = Math.min(delay * 2, maxPollMs)) {
      const remaining = until - performance.now();
      if (remaining <= 0 || signal.aborted) {
        return undefined;
      }
      await sleep(Math.min(delay, remaining), signal);
      if (signal.aborted) {
        return undefined;
      }
      let record;
      try {
        record = await timed(call, "get", () => store.get(call.record));
      } catch (error) {
        emit(call, "store_error", { operation: "get", error, willRetry: true });
        continue;
      }
      const now = clock.now();
      if (record === undefined || record.fingerprint !== call.fingerprint) {
        return { kind: "released" };
      }
      if (record.status === "completed") {
        return record.expiresAt <= now
          ? { kind: "released" }
          : { kind: "outcome", outcome: record.outcome ?? new Uint8Array(0) };
      }
      if (record.leaseUntil <= now) {
        return { kind: "released" };
      }
    }
  }

  /** Answers with a stored outcome; the handler does not run. */
  function replay(call: DedupeCall, bytes: Uint8Array): UnaryResponse {
    const outcome = decodeStoredOutcome(bytes);
    if (outcome.kind === "error") {
      emit(call, "replayed", { code: outcome.error.code });
      outcome.error.metadata.set(replayedHeader, "true");
      throw outcome.error;
    }
    emit(call, "replayed");
    return createReplayResponse(
      call.req,
      fromBinary(call.req.method.output, outcome.response),
      outcome.header,
      outcome.trailer,
      settings.compressions,
    );
  }

  function mismatch(call: DedupeCall) {
    emit(call, "mismatch");
    return createIdempotencyError(
      Code.FailedPrecondition,
      ErrorReason.REQUEST_ID_REUSED,
      `the request ID in field ${call.fieldName} was already used for a request with different content; ` +
        "use a new request ID for a new request",
      { metadata: { field: call.fieldName } },
    );
  }

  /** Runs a store operation and records its duration for events. */
  async function timed<T>(call: DedupeCall, operation: StoreOperation, run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    let failed = true;
    try {
      const result = await run();
      failed = false;
      return result;
    } finally {
      const ms = performance.now() - started;
      call.storeMs += ms;
      if (settings.listening()) {
        call.storeCalls.push({ operation, ms, failed });
      }
    }
  }

  function emit(call: DedupeCall, type: IdempotencyEventType, details?: Partial<IdempotencyEvent>): void {
    const onEvent = settings.onEvent;
    if (onEvent === undefined || !settings.listening()) {
      // Nobody records this event: skip building it and hashing the key.
      call.storeCalls.length = 0;
      return;
    }
    const storeCalls = call.storeCalls;
    call.storeCalls = [];
    call.keyHash ??= hashRecordKey(call.record);
    try {
      onEvent({
        ...details,
        type,
        method: call.record.method,
        keyHash: call.keyHash,
        at: clock.now(),
        storeMs: call.storeMs,
        storeCalls,
      });
    } catch {
      // A failing listener must not fail the call or skip the store writes.
    }
  }
}

/**
 * Encodes an outcome for the store. A response or error that cannot be
 * encoded (a handler that returned a malformed message, a detail that does
 * not match its type) is stored as the error connect reports for it, so
 * that the claim always ends and a retry never runs the handler again.
 */
function encodeOutcome(outcome: () => StoredOutcomeValue): { bytes: Uint8Array; code: Code | undefined } {
  try {
    const value = outcome();
    return { bytes: encodeStoredOutcome(value), code: value.kind === "error" ? value.error.code : undefined };
  } catch (cause) {
    const error = new ConnectError("internal error", Code.Internal, undefined, undefined, cause);
    return { bytes: encodeStoredOutcome({ kind: "error", error }), code: error.code };
  }
}

/** Replaces every entry of `target` with those of `source`; returns `target`. */
function refill(target: Headers, source: Headers): Headers {
  for (const name of [...target.keys()]) {
    target.delete(name);
  }
  source.forEach((value, name) => target.append(name, value));
  return target;
}

/** One deduplicated call as the interceptor handles it. */
interface DedupeCall {
  readonly req: UnaryRequest;
  readonly record: RecordKey;
  /** The record identity as a map key for in-flight waiters. */
  readonly id: string;
  readonly fieldName: string;
  readonly fingerprint: string;
  readonly retentionMs: number;
  /** When the latest claim of this call expires if it is never completed. */
  claimExpiresAt: number;
  /** The end of this call's wait budget, set by its first wait (performance.now() time). */
  waitUntil: number | undefined;
  storeMs: number;
  storeCalls: StoreCall[];
  keyHash: string | undefined;
}

/** The state of a claimed execution while its outcome is written. */
interface Execution {
  readonly owner: string;
  readonly running: InFlightOwner;
  readonly keeper: LeaseKeeper;
  /** Another call took the key over; stop writing. */
  lost: boolean;
}

/**
 * The canonical request ID of a call, or undefined when it has none and may
 * run without deduplication. Throws INVALID_ARGUMENT when the method requires
 * a request ID or the ID has the wrong format.
 */
function requestIdOf(req: UnaryRequest, policy: MethodIdempotencyPolicy, field: DescField): string | undefined {
  const value = (req.message as unknown as Record<string, unknown>)[field.localName] as string;
  if (value === "") {
    if (policy.keyRequired) {
      throw createIdempotencyError(
        Code.InvalidArgument,
        ErrorReason.REQUEST_ID_REQUIRED,
        `${req.method.parent.typeName}.${req.method.name} requires a request ID in field ${field.name}`,
        { metadata: { field: field.name } },
      );
    }
    return undefined;
  }
  const check = canonicalizeRequestId(value, policy.keyFormat);
  if (!check.ok) {
    throw createIdempotencyError(
      Code.InvalidArgument,
      ErrorReason.REQUEST_ID_INVALID,
      `the request ID in field ${field.name} ${check.problem}`,
      { metadata: { field: field.name } },
    );
  }
  return check.key;
}

function createCall(
  req: UnaryRequest,
  field: DescField,
  scope: string,
  key: string,
  retentionMs: number,
): DedupeCall {
  const method = `${req.method.parent.typeName}/${req.method.name}`;
  return {
    req,
    record: { scope, method, key },
    // Method names have no newline and keys are printable ASCII, so the
    // free-form scope goes last and the joined string is unambiguous.
    id: `${method}\n${key}\n${scope}`,
    fieldName: field.name,
    fingerprint: fingerprintRequest(req.method.input, req.message, field),
    retentionMs,
    claimExpiresAt: 0,
    waitUntil: undefined,
    storeMs: 0,
    storeCalls: [],
    keyHash: undefined,
  };
}
