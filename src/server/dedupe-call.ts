import type { DescField } from "@bufbuild/protobuf";
import type { UnaryRequest, UnaryResponse } from "@connectrpc/connect";
import type { RecordKey } from "../store/idempotency-store.js";
import type { StoreCall } from "./idempotency-event.js";
import type { InFlightWaiters } from "./in-flight-waiters.js";
import type { InterceptorSettings } from "./interceptor-options.js";
import type { PendingBudget } from "./pending-budget.js";
import type { ReplayCache } from "./replay-cache.js";
import { fingerprintRequest } from "./request-fingerprint.js";

/** The rest of the chain: the handler, behind any interceptors after this one. */
export type UnaryNext = (req: UnaryRequest) => Promise<UnaryResponse>;

/**
 * One deduplicated call as the interceptor handles it: what every step
 * (claim, run, settle, wait, replay) reads, and the little it accumulates
 * for events. Times here are `performance.now()` readings: durations inside
 * a process use the monotonic clock, so a step of the wall clock changes
 * nothing.
 */
export interface DedupeCall {
  readonly req: UnaryRequest;
  /** The interceptor's settings. */
  readonly settings: InterceptorSettings;
  /** The executions running in this process. */
  readonly inFlight: InFlightWaiters;
  /** The memory for outcomes waiting for their write. */
  readonly pending: PendingBudget;
  /** Completed outcomes of this process, when the interceptor's `replayCache` is on. */
  readonly replayCache: ReplayCache | undefined;
  readonly record: RecordKey;
  /** The record identity as a map key for in-flight waiters. */
  readonly id: string;
  readonly fieldName: string;
  readonly fingerprint: string;
  readonly retentionMs: number;
  /** When the latest claim of this call was sent to the store. */
  claimSentAt: number;
  /** Until when the latest claim of this call lives if it is never completed. */
  claimDeadline: number;
  /** The end of this call's wait budget, set by its first wait. */
  waitUntil: number | undefined;
  storeMs: number;
  storeCalls: StoreCall[];
  keyHash: string | undefined;
}

/** What `createDedupeCall` needs besides the request. */
export interface DedupeCallInit {
  readonly settings: InterceptorSettings;
  readonly inFlight: InFlightWaiters;
  readonly pending: PendingBudget;
  readonly replayCache: ReplayCache | undefined;
  readonly field: DescField;
  readonly scope: string;
  readonly key: string;
  readonly retentionMs: number;
}

/** Builds the state of one deduplicated call; fingerprints the request. */
export function createDedupeCall(req: UnaryRequest, init: DedupeCallInit): DedupeCall {
  const method = `${req.method.parent.typeName}/${req.method.name}`;
  return {
    req,
    settings: init.settings,
    inFlight: init.inFlight,
    pending: init.pending,
    replayCache: init.replayCache,
    record: { scope: init.scope, method, key: init.key },
    // Method names have no newline and keys are printable ASCII, so the
    // free-form scope goes last and the joined string is unambiguous.
    id: `${method}\n${init.key}\n${init.scope}`,
    fieldName: init.field.name,
    fingerprint: fingerprintRequest(req.method.input, req.message, init.field),
    retentionMs: init.retentionMs,
    claimSentAt: 0,
    claimDeadline: 0,
    waitUntil: undefined,
    storeMs: 0,
    storeCalls: [],
    keyHash: undefined,
  };
}
