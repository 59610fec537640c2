import type { UnaryRequest } from "@connectrpc/connect";
import type { MethodIdempotencyPolicy } from "../policy/method-policy.js";
import { resolveCallScope } from "./call-scope.js";
import { createDedupeCall, type DedupeCall } from "./dedupe-call.js";
import type { InFlightWaiters } from "./in-flight-waiters.js";
import type { InterceptorSettings } from "./interceptor-options.js";
import { naturalKeyOf } from "./natural-key-of.js";
import type { PendingBudget } from "./pending-budget.js";
import type { ReplayCache } from "./replay-cache.js";
import { requestIdOf } from "./request-id-of.js";

/** What the interceptor knows about a unary method with a request ID field or a natural key. */
export interface MethodSetup {
  readonly settings: InterceptorSettings;
  readonly inFlight: InFlightWaiters;
  readonly pending: PendingBudget;
  readonly replayCache: ReplayCache | undefined;
  readonly policy: MethodIdempotencyPolicy;
}

/**
 * The deduplicated call of `req`, as the interceptor builds it for each
 * unary call of a method with a request ID field or a natural key: the key
 * (`requestIdOf`, or `naturalKeyOf` for `key_fields`), the scope
 * (`resolveCallScope`), and the method's policy over the interceptor's
 * settings (`createDedupeCall`). Undefined when the call has no key (an
 * empty request ID on a method that does not require one): it runs as it
 * is. Rejects as those steps throw: INVALID_ARGUMENT for a missing or
 * invalid key, the scope function's error.
 */
export async function dedupeCallOf(req: UnaryRequest, setup: MethodSetup): Promise<DedupeCall | undefined> {
  const { settings, policy } = setup;
  const field = policy.requestIdField;
  const naturalKey = field === undefined ? (policy.keyFields ?? []) : undefined;
  const key = naturalKey !== undefined ? naturalKeyOf(req, naturalKey) : field && requestIdOf(req, policy, field);
  if (key === undefined) {
    return undefined;
  }
  const scope = await resolveCallScope(req, settings);
  return createDedupeCall(req, {
    settings,
    inFlight: setup.inFlight,
    pending: setup.pending,
    replayCache: setup.replayCache,
    field,
    fieldName: naturalKey?.map((p) => p.path).join(", ") ?? field?.name ?? "",
    scope,
    key,
    retentionMs: policy.retentionMs ?? settings.retentionMs,
    tombstoneMs: policy.tombstoneRetentionMs ?? settings.tombstoneRetentionMs,
    duplicateMode: policy.duplicateMode ?? settings.onDuplicate,
    fingerprintExclude: policy.fingerprintExclude,
  });
}
