import type { DescField } from "@bufbuild/protobuf";
import type { DuplicateModeName } from "../policy/method-policy.js";
import type { FieldPath } from "../policy/field-path.js";
import type { UnaryRequest, UnaryResponse } from "@connectrpc/connect";
import type { RecordKey } from "../store/idempotency-store.js";
import type { StoreCall } from "./idempotency-event.js";
import type { InFlightWaiters } from "./in-flight-waiters.js";
import type { InterceptorSettings } from "./interceptor-options.js";
import type { PendingBudget } from "./pending-budget.js";
import { createFingerprintMatcher, versionedFingerprint } from "./versioned-fingerprint.js";
import type { ReplayCache } from "./replay-cache.js";

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
  /** How errors name the key: the request ID field, or the fields of a natural key. */
  readonly fieldName: string;
  /** Whether the key is a natural key (`key_fields`) rather than a request ID. */
  readonly naturalKey: boolean;
  /**
   * The fingerprint claims carry: this release's form, or the stored form
   * of an older record that matched (`matchesFingerprint`), adopted so that
   * the store's own comparisons (takeover) agree.
   */
  fingerprint: string;
  /** Whether a stored fingerprint, in whatever version wrote it, is this request's. */
  readonly matchesFingerprint: (stored: string) => boolean;
  readonly retentionMs: number;
  /** How long a tombstone keeps the key taken after `retentionMs` (0: none). */
  readonly tombstoneMs: number;
  /** When the latest claim of this call was sent to the store. */
  claimSentAt: number;
  /** What a duplicate of a completed call gets. */
  readonly duplicateMode: DuplicateModeName;
  /**
   * The store's clock at this call's latest claim, and `performance.now()`
   * then: from them the expiry of an outcome stored later is estimated on the
   * store's clock without reading the local wall clock.
   */
  claimedAt: { readonly storeMs: number; readonly monotonicMs: number } | undefined;
  /**
   * Until when the record that holds the key is known to be kept, by the
   * store's clock: what `idempotency-expires` announces. Undefined until
   * known.
   */
  expiresAt: number | undefined;
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
  /** The request ID field; undefined for a natural key. */
  readonly field: DescField | undefined;
  /** The key's fields, for errors: the request ID field's name, or the natural key's paths. */
  readonly fieldName: string;
  readonly replayCache: ReplayCache | undefined;
  readonly scope: string;
  readonly key: string;
  readonly retentionMs: number;
  readonly tombstoneMs: number;
  readonly duplicateMode: DuplicateModeName;
  /** The method's `fingerprint_exclude`. */
  readonly fingerprintExclude: readonly FieldPath[];
}

/** Builds the state of one deduplicated call; fingerprints the request. */
export function createDedupeCall(req: UnaryRequest, init: DedupeCallInit): DedupeCall {
  const method = `${req.method.parent.typeName}/${req.method.name}`;
  const schema = req.method.input;
  const fingerprint = versionedFingerprint(schema, req.message, init.field, init.fingerprintExclude);
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
    fieldName: init.fieldName,
    naturalKey: init.field === undefined,
    fingerprint,
    matchesFingerprint: createFingerprintMatcher(schema, req.message, init.field, fingerprint),
    retentionMs: init.retentionMs,
    tombstoneMs: init.tombstoneMs,
    claimSentAt: 0,
    duplicateMode: init.duplicateMode,
    claimedAt: undefined,
    expiresAt: undefined,
    claimDeadline: 0,
    waitUntil: undefined,
    storeMs: 0,
    storeCalls: [],
    keyHash: undefined,
  };
}
