import { randomUUID } from "node:crypto";
import { type DescMessage, type Message, type MessageShape, isMessage, toBinary } from "@bufbuild/protobuf";
import { type Code, ConnectError, type HandlerContext, createContextKey } from "@connectrpc/connect";
import { ErrorReason } from "../errors/error-reason.js";
import { createIdempotencyError } from "../errors/idempotency-error.js";
import type {
  AtomicCompletion,
  AtomicIdempotencyStore,
  TransactionMode,
  TransactionWork,
} from "../store/atomic-idempotency-store.js";
import type { IdempotencyStore, RecordKey } from "../store/idempotency-store.js";
import { deriveRequestId } from "./derived-key.js";
import type { StoreOperation } from "./idempotency-event.js";
import { type PhaseCodec, type PhaseJsonResult, createJsonPhaseCodec, createMessagePhaseCodec } from "./phase-codec.js";
import { hasDispositionMark, interruptOnError } from "./error-disposition.js";
import { encodeStoredOutcome } from "./stored-outcome.js";

/**
 * Effects of a handler that survive crashes and retries, for one call. Get
 * them with `atomicEffects(ctx, store)`.
 */
export interface AtomicEffects<Tx, Mode extends TransactionMode> {
  /**
   * Runs `fn` in one transaction of the store's database and completes the
   * request ID in the same transaction with the response `fn` returns: the
   * handler's writes and the stored response commit together, or neither
   * does. `fn` receives the transaction handle (for the SQLite store, its
   * better-sqlite3 `Database`; for PostgreSQL, a `pg` client inside the
   * transaction); it is synchronous when the store's transactions are.
   *
   * Resolves to the response, which the handler returns; the client receives
   * exactly what was committed, even if the handler later returns something
   * else or throws. When `fn` throws, its writes roll back and the promise
   * rejects with that error, marked indefinite: the record keeps its phases
   * and the next call takes it over and runs again (mark the error with
   * `releaseOnError` or `storeOnError` inside `fn` to decide otherwise).
   * Call it at most once, as the last step. Without a request ID, `fn` runs
   * in a plain transaction.
   */
  commit<R extends Message | (Mode extends "sync" ? PromiseLike<unknown> : never)>(
    fn: TransactionWork<Tx, R, Mode>,
  ): Promise<Awaited<R>>;
  /**
   * Runs one step of the handler and records its result under the request
   * ID: JSON as `JSON.stringify` writes it, or nothing. When a retry takes
   * over after a crash, a step already recorded returns its recorded result
   * without running again, so the handler resumes at the first unfinished
   * step; every run, the first included, gets the decoded result. Each step
   * needs its own name within the request. A step that calls another service
   * should pass it `derivedKey(name)`: the step runs again if the crash came
   * between the call and its recording. Without a request ID, the step just
   * runs.
   */
  phase<T extends PhaseJsonResult>(name: string, fn: () => T | Promise<T>): Promise<T>;
  /** Like `phase(name, fn)`, for a step whose result is a protobuf message of `schema`. */
  phase<Desc extends DescMessage>(
    name: string,
    schema: Desc,
    fn: () => MessageShape<Desc> | Promise<MessageShape<Desc>>,
  ): Promise<MessageShape<Desc>>;
  /**
   * A request ID for a downstream call made by step `name`: a UUID v5 from
   * scope, method, request ID and `name` (see `deriveRequestId`), the same in
   * every retry, so the downstream service deduplicates the call. Without a
   * request ID the call itself is not deduplicated, and neither is the
   * downstream call: the key is then a random UUID v4, the same for `name`
   * within this call.
   */
  derivedKey(name: string): string;
}

/** The store operations of `commit` and `phase`, as named in events. */
export type AtomicStoreOperation = Extract<StoreOperation, "commit" | "get_phase" | "record_phase">;

/** What the store keeps for an outcome: its bytes, and the code of a stored error. */
export interface StoredForm {
  readonly bytes: Uint8Array;
  readonly code: Code | undefined;
}

/** What the interceptor tells `atomicEffects` about one claimed execution. */
export interface AtomicClaim {
  /** The interceptor's store. */
  readonly store: IdempotencyStore;
  /** The claimed record. */
  readonly key: RecordKey;
  /** The owner token of the claim. */
  readonly owner: string;
  /** The attempt of the claim: with `owner`, what every write is fenced by. */
  readonly attempt: number;
  /** How long the completed record's outcome is replayed, as for the interceptor's own completion. */
  readonly retentionMs: number;
  /** How long a tombstone keeps the key taken after that (0: none). */
  readonly tombstoneMs: number;
  /** Runs a store operation, timed and, when it rejects, reported as a store error. */
  readonly storeCall: <T>(operation: AtomicStoreOperation, run: () => Promise<T>) => Promise<T>;
  /** Reports that another execution took the claim over. */
  readonly claimLost: (operation: AtomicStoreOperation) => void;
  /**
   * What the store keeps for a response outcome: the outcome itself, or the
   * RESPONSE_TOO_LARGE error when it is larger than the store keeps.
   */
  readonly storedForm: (outcome: Uint8Array) => StoredForm;
  /**
   * Set by `commit` once the key completed together with the handler's
   * writes. The interceptor then answers with `outcome` and does not
   * complete the key again.
   */
  committed: CommittedOutcome | undefined;
}

/** What `commit` stored, for the interceptor's answer. */
export interface CommittedOutcome {
  /** The response outcome the client gets. */
  readonly outcome: Uint8Array;
  /** What the store keeps: `outcome`, or RESPONSE_TOO_LARGE. */
  readonly stored: StoredForm;
  /** The call's own response headers, which the handler may change after the commit. */
  readonly responseHeader: Headers;
  /** The call's own response trailers. */
  readonly responseTrailer: Headers;
}

/**
 * Where the interceptor puts the `AtomicClaim` of a deduplicated call. Not
 * for handlers: they use `atomicEffects`.
 */
export const atomicClaimKey = createContextKey<AtomicClaim | undefined>(undefined, {
  description: "connect-idempotency: the claim behind atomic effects",
});

/** What `commit` knows once the key completed. */
interface Committed<R> extends Pick<CommittedOutcome, "outcome" | "stored"> {
  readonly response: R;
}

interface MemoizedEffects {
  readonly store: AtomicIdempotencyStore<unknown, TransactionMode>;
  readonly effects: AtomicEffects<unknown, TransactionMode>;
}

// Per call: a handler may ask more than once, and must get the same state.
// Kept in the call's own context values rather than a WeakMap keyed by them:
// with a WeakMap entry per call, V8's young-generation collections took about
// 15 us more per call (docs/benchmark.md, "Where the layer's CPU goes").
const effectsOfCallKey = createContextKey<MemoizedEffects | undefined>(undefined, {
  description: "connect-idempotency: the call's atomic effects",
});

/**
 * The atomic effects of the call a handler runs, typed for `store`, which
 * must be the store of the idempotency interceptor: `commit` hands its
 * transaction handle to the handler. See docs/atomic-effects.md.
 *
 * ```ts
 * import { create } from "@bufbuild/protobuf";
 * import type { ServiceImpl } from "@connectrpc/connect";
 * import { atomicEffects, createSqliteStore } from "connect-idempotency";
 * import { CreatePaymentResponseSchema, type PaymentService } from "./gen/demo/v1/payments_pb.js";
 *
 * const store = createSqliteStore({ path: "payments.db" }); // the interceptor's store too
 *
 * export const payments: Partial<ServiceImpl<typeof PaymentService>> = {
 *   createPayment(req, ctx) {
 *     const effects = atomicEffects(ctx, store);
 *     // The row and the stored response commit together, or not at all.
 *     return effects.commit((db) => {
 *       const paymentId = `pay_${effects.derivedKey("payment")}`; // the same in every retry
 *       db.prepare("INSERT INTO payments (payment_id, account_id) VALUES (?, ?)").run(paymentId, req.accountId);
 *       return create(CreatePaymentResponseSchema, { payment: { paymentId, accountId: req.accountId } });
 *     });
 *   },
 * };
 * ```
 */
export function atomicEffects<Tx, Mode extends TransactionMode>(
  ctx: HandlerContext,
  store: AtomicIdempotencyStore<Tx, Mode>,
): AtomicEffects<Tx, Mode> {
  const memo = ctx.values.get(effectsOfCallKey);
  if (memo !== undefined && memo.store !== store) {
    throw new Error("atomicEffects: called with two different stores in one call");
  }
  if (memo !== undefined) {
    return memo.effects as AtomicEffects<Tx, Mode>;
  }
  const claim = ctx.values.get(atomicClaimKey);
  if (claim !== undefined && claim.store !== store) {
    throw new Error(
      "atomicEffects: the store is not the idempotency interceptor's store; commit would complete the request ID in another database",
    );
  }
  const effects = createAtomicEffects(ctx, store, claim);
  ctx.values.set(effectsOfCallKey, {
    store: store as AtomicIdempotencyStore<unknown, TransactionMode>,
    effects: effects as AtomicEffects<unknown, TransactionMode>,
  });
  return effects;
}

function createAtomicEffects<Tx, Mode extends TransactionMode>(
  ctx: HandlerContext,
  store: AtomicIdempotencyStore<Tx, Mode>,
  claim: AtomicClaim | undefined,
): AtomicEffects<Tx, Mode> {
  const phasesRun = new Set<string>();
  const randomKeys = new Map<string, string>();
  let commitCalled = false;

  async function commit<R extends Message>(fn: TransactionWork<Tx, R, Mode>): Promise<R> {
    if (commitCalled) {
      throw new Error("atomicEffects: commit was already called in this call");
    }
    commitCalled = true;
    const output = ctx.method.output;
    // Errors of fn (and of checking its response) roll back and release the
    // key; anything else the store raised. The steps are module-level
    // functions on this state rather than closures: one commit runs per call.
    const work: CommitWork = { fn: fn as (tx: unknown) => unknown, output, mode: store.transactionMode, failed: false };
    try {
      if (claim === undefined) {
        return (await store.transact(((tx: Tx) => runCommitWork(work, tx, asIs)) as TransactionWork<
          Tx,
          unknown,
          Mode
        >)) as R;
      }
      const result = await claim.storeCall("commit", () =>
        store
          .completeWithin(
            {
              key: claim.key,
              owner: claim.owner,
              attempt: claim.attempt,
              retentionMs: claim.retentionMs,
              tombstoneMs: claim.tombstoneMs,
            },
            ((tx: Tx) =>
              runCommitWork(work, tx, (response) => completionOf(ctx, claim, output, response))) as TransactionWork<
              Tx,
              AtomicCompletion<Committed<Message>>,
              Mode
            >,
          )
          // A failure of fn is the handler's, not the store's.
          .catch((error: unknown) => (work.failed ? { kind: "fn_failed" as const, error } : Promise.reject(error))),
      );
      if (result.kind === "fn_failed") {
        throw result.error;
      }
      if (result.kind === "not_owner") {
        claim.claimLost("commit");
        throw claimLost();
      }
      const { response, outcome, stored } = result.value;
      claim.committed = { outcome, stored, responseHeader: ctx.responseHeader, responseTrailer: ctx.responseTrailer };
      return response as R;
    } catch (error) {
      if (work.failed) {
        // Nothing of fn is in the database, but steps before the commit
        // (phases, downstream calls) may have acted: a retry runs the handler
        // again as a takeover, with the recorded phases, unless the error
        // says otherwise.
        const thrown = error instanceof Object ? error : ConnectError.from(error);
        throw hasDispositionMark(thrown) ? thrown : interruptOnError(thrown);
      }
      throw error instanceof ConnectError
        ? error
        : storeFailed(error, "the idempotency store failed, so the handler's writes were not committed");
    }
  }

  async function phase<T>(name: string, codec: PhaseCodec<T>, fn: () => T | Promise<T>): Promise<T> {
    if (name === "") {
      throw new TypeError("atomicEffects: a phase needs a name");
    }
    if (phasesRun.has(name)) {
      throw new Error(`atomicEffects: phase "${name}" already ran in this call; give each step its own name`);
    }
    if (commitCalled) {
      throw new Error(`atomicEffects: phase "${name}" started after commit; commit must be the last step`);
    }
    phasesRun.add(name);
    const runStep = async (): Promise<Uint8Array> => {
      try {
        return codec.encode(await fn());
      } catch (error) {
        // A step that failed did not run: the handler may try it again.
        phasesRun.delete(name);
        throw error;
      }
    };
    if (claim === undefined) {
      // Nothing to resume from, but the same result as a recorded step would give.
      return codec.decode(await runStep(), name);
    }
    const recorded = await storeCall(claim, "get_phase", () => store.getPhase({ key: claim.key, name }));
    if (recorded !== undefined) {
      return codec.decode(recorded, name);
    }
    const result = await runStep();
    const held = await storeCall(claim, "record_phase", () =>
      store.recordPhase({ key: claim.key, owner: claim.owner, attempt: claim.attempt, name, result }),
    );
    if (!held) {
      claim.claimLost("record_phase");
      throw claimLost();
    }
    // The decoded form, so that this run sees exactly what a resumed one would.
    return codec.decode(result, name);
  }

  return {
    commit: commit as AtomicEffects<Tx, Mode>["commit"],
    phase(name: string, schemaOrFn: DescMessage | (() => unknown), fn?: () => unknown): Promise<never> {
      const run =
        typeof schemaOrFn === "function"
          ? phase(name, createJsonPhaseCodec(), schemaOrFn as () => PhaseJsonResult)
          : phase(name, createMessagePhaseCodec(schemaOrFn), fn as () => Message);
      return run as Promise<never>;
    },
    derivedKey(name) {
      if (claim !== undefined) {
        return deriveRequestId({ scope: claim.key.scope, method: claim.key.method, key: claim.key.key, name });
      }
      let key = randomKeys.get(name);
      if (key === undefined) {
        key = randomUUID();
        randomKeys.set(name, key);
      }
      return key;
    },
  };
}

/** One call of `commit`: the handler's function, and whether it failed. */
interface CommitWork {
  readonly fn: (tx: unknown) => unknown;
  /** The method's output: what the function must return. */
  readonly output: DescMessage;
  readonly mode: TransactionMode;
  /** Set when the function (or the check of what it returned) threw. */
  failed: boolean;
}

/**
 * Runs the handler's function in the store's transaction and hands its
 * checked response to `then`; marks the work failed when either throws.
 */
function runCommitWork(work: CommitWork, tx: unknown, then: (response: Message) => unknown): unknown {
  try {
    const result = work.fn(tx);
    if (!isThenable(result)) {
      return then(checkedResponse(work.output, result));
    }
    if (work.mode === "sync") {
      result.then(undefined, () => {});
      throw new TypeError(
        "atomicEffects: this store's transactions cannot span an await; commit's function must be synchronous",
      );
    }
    return Promise.resolve(result)
      .then((value) => then(checkedResponse(work.output, value)))
      .then(undefined, (error: unknown) => workFailed(work, error));
  } catch (error) {
    return workFailed(work, error);
  }
}

function workFailed(work: CommitWork, error: unknown): never {
  work.failed = true;
  throw error;
}

function checkedResponse(output: DescMessage, value: unknown): Message {
  if (!isMessage(value, output)) {
    throw new TypeError(`atomicEffects: commit's function must return a ${output.typeName} message`);
  }
  return value;
}

function asIs(response: Message): Message {
  return response;
}

/** What completes the key: the response's outcome, or RESPONSE_TOO_LARGE, with what commit hands back. */
function completionOf(
  ctx: HandlerContext,
  claim: AtomicClaim,
  output: DescMessage,
  response: Message,
): AtomicCompletion<Committed<Message>> {
  const outcome = encodeStoredOutcome({
    kind: "response",
    response: toBinary(output, response),
    header: ctx.responseHeader,
    trailer: ctx.responseTrailer,
  });
  const stored = claim.storedForm(outcome);
  return { value: { response, outcome, stored }, outcome: stored.bytes, outcomeCode: stored.code ?? 0 };
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === "object" && value !== null && typeof (value as PromiseLike<unknown>).then === "function";
}

async function storeCall<T>(claim: AtomicClaim, operation: AtomicStoreOperation, run: () => Promise<T>): Promise<T> {
  try {
    return await claim.storeCall(operation, run);
  } catch (error) {
    throw storeFailed(error, "the idempotency store failed, so this step of the request was not recorded");
  }
}

function storeFailed(cause: unknown, message: string): ConnectError {
  // UNAVAILABLE is indefinite by default: the record keeps its phases, and a
  // retry takes it over at once (or replays it, if the commit did land).
  return createIdempotencyError(ErrorReason.STORE_UNAVAILABLE, `${message}; retry with the same request ID`, {
    cause,
  });
}

function claimLost(): ConnectError {
  // Our lease ran out and a retry took the request over: it answers now.
  return createIdempotencyError(
    ErrorReason.REQUEST_IN_PROGRESS,
    "another execution took over this request ID; retry with the same request ID for its answer",
  );
}
