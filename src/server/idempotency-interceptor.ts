import type { Interceptor, UnaryRequest, UnaryResponse } from "@connectrpc/connect";
import { createMethodPolicyCache } from "../policy/method-policy.js";
import { atomicClaimKey } from "./atomic-effects.js";
import type { UnaryNext } from "./dedupe-call.js";
import { dedupeCallOf, type MethodSetup } from "./dedupe-call-of.js";
import { deduplicate } from "./deduplicate.js";
import { createInFlightWaiters } from "./in-flight-waiters.js";
import { type IdempotencyInterceptorOptions, resolveInterceptorOptions } from "./interceptor-options.js";
import { createPendingBudget } from "./pending-budget.js";
import { createReplayCache } from "./replay-cache.js";

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
 * first runs waits for its outcome up to `maxWaitMs`. Once the replay window
 * (`retentionMs`) ends, a tombstone keeps the request ID taken for
 * `tombstoneRetentionMs` more: a late duplicate with the same payload fails
 * with FAILED_PRECONDITION (REQUEST_ID_EXPIRED) and does not run. An indefinite error (the
 * handler may have acted) keeps the record, and the next call takes it over
 * as a new attempt. Every other call, streaming calls included, passes
 * through untouched. See docs/server-interceptor.md.
 *
 * Per method, `(idempotency.v1.policy)` may instead key calls by request
 * fields (`key_fields`, a natural key), leave fields out of the fingerprint
 * (`fingerprint_exclude`), and refuse duplicates with ALREADY_EXISTS
 * REQUEST_ID_ALREADY_EXECUTED rather than replay them (`on_duplicate:
 * DUPLICATE_MODE_REJECT`, which stores no response body). First executions,
 * replays and REQUEST_IN_PROGRESS errors carry `idempotency-expires`: until
 * when the outcome is replayed, by the store's clock.
 *
 * The steps, one module each: `dedupeCallOf` builds the call, then
 * `claimKey` -> `runExecution` -> settle (`storeOutcome`,
 * `interruptExecution`, `releaseExecution`), and for duplicates `waitFor` ->
 * `replayOutcome`; `deduplicate` ties them together.
 *
 * ```ts
 * import * as http2 from "node:http2";
 * import { createContextKey } from "@connectrpc/connect";
 * import { connectNodeAdapter } from "@connectrpc/connect-node";
 * import { createIdempotencyInterceptor, createSqliteStore } from "connect-idempotency";
 * import { PaymentService } from "./gen/demo/v1/payments_pb.js";
 *
 * // Set by your auth interceptor, which comes before this one: request IDs of
 * // different tenants never meet.
 * const tenant = createContextKey("anonymous");
 * const store = createSqliteStore({ path: "idempotency.db" });
 * const handler = connectNodeAdapter({
 *   interceptors: [createIdempotencyInterceptor({ store, scope: (req) => req.contextValues.get(tenant) })],
 *   routes: (router) =>
 *     router.service(PaymentService, {
 *       // Runs once per request ID: a retry gets the stored response.
 *       createPayment: (req) => ({ payment: { paymentId: `pay_${req.requestId}`, accountId: req.accountId } }),
 *     }),
 * });
 * http2.createServer(handler).listen(8080);
 * ```
 */
export function createIdempotencyInterceptor(options: IdempotencyInterceptorOptions): Interceptor {
  const settings = resolveInterceptorOptions(options);
  const policyOf = createMethodPolicyCache(settings.extensions);
  const inFlight = createInFlightWaiters();
  const pending = createPendingBudget(settings.maxPendingCompletions, settings.maxPendingBytes);
  const replayCache = settings.replayCache === undefined ? undefined : createReplayCache(settings.replayCache);
  // Calls that are never deduplicated go straight to `next`, without an
  // extra async step.
  return (next) => (req) => {
    if (req.stream) {
      return next(req);
    }
    const policy = policyOf(req.method);
    if (policy.requestIdField === undefined && policy.keyFields === undefined) {
      return next(req);
    }
    if (req.contextValues.get(atomicClaimKey) !== undefined) {
      // An idempotency interceptor earlier in the chain claimed this call
      // already; claiming again would wait for that claim, i.e. for itself.
      warnRegisteredTwice();
      return next(req);
    }
    return handleUnary(req, { settings, inFlight, pending, replayCache, policy }, next as UnaryNext);
  };
}

/**
 * Checks the request ID (or reads the natural key), then deduplicates;
 * calls with an empty request ID run as they are.
 */
async function handleUnary(req: UnaryRequest, setup: MethodSetup, next: UnaryNext): Promise<UnaryResponse> {
  const call = await dedupeCallOf(req, setup);
  if (call === undefined) {
    return next(req);
  }
  return deduplicate(call, next);
}

let warnedTwice = false;

function warnRegisteredTwice(): void {
  if (!warnedTwice) {
    warnedTwice = true;
    process.emitWarning(
      "connect-idempotency: a call passed two idempotency interceptors; the later one lets it through. " +
        "Register createIdempotencyInterceptor once per server.",
    );
  }
}
