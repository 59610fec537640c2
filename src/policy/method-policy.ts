import { type DescField, type DescMethod, getOption, hasOption } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import type { DuplicateMode, KeyFormat } from "../../gen/idempotency/v1/idempotency_pb.js";
import { type FieldPath, resolveFieldPath } from "./field-path.js";
import type { IdempotencyExtensions } from "./idempotency-extensions.js";
import { findRequestIdField } from "./request-id-field.js";

// A number instead of a value import: the protoc plugin loads this file while
// buf has deleted gen/ for a clean generate (see request-id-field.ts).
const keyFormatOpaque: KeyFormat.OPAQUE = 2;
const duplicateModeReplay: DuplicateMode.REPLAY = 1;
const duplicateModeReject: DuplicateMode.REJECT = 2;

/**
 * What a duplicate of a completed call gets: the stored outcome (`replay`),
 * or ALREADY_EXISTS REQUEST_ID_ALREADY_EXECUTED without the response
 * (`reject`).
 */
export type DuplicateModeName = "replay" | "reject";

/**
 * The accepted form of request IDs for a method.
 *
 * @private Internal code, does not follow semantic versioning.
 */
export type RequestIdFormat = "uuid" | "opaque";

/**
 * What the proto says about one method's idempotency.
 *
 * @private Internal code, does not follow semantic versioning.
 */
export interface MethodIdempotencyPolicy {
  /** The method. */
  readonly method: DescMethod;
  /**
   * The request ID field when the method is deduplicated: a unary method
   * whose input has a usable request ID field. Undefined otherwise; such calls
   * pass through untouched.
   */
  readonly requestIdField: DescField | undefined;
  /** False when AIP-4235 forbids clients to fill in the request ID. */
  readonly autoFill: boolean;
  /** A call with an empty request ID is refused. */
  readonly keyRequired: boolean;
  /** The accepted form of request IDs. */
  readonly keyFormat: RequestIdFormat;
  /** The method's own retention of completed keys, in milliseconds. */
  readonly retentionMs: number | undefined;
  /** The method's own `tombstone_retention` in milliseconds (0: no tombstone); undefined when unset. */
  readonly tombstoneRetentionMs: number | undefined;
  /** The method is marked NO_SIDE_EFFECTS or IDEMPOTENT. */
  readonly safeToRetry: boolean;
  /** The method's `on_duplicate`; undefined when unset, and the interceptor's default applies. */
  readonly duplicateMode: DuplicateModeName | undefined;
  /**
   * The natural key of a unary method without a request ID field
   * (`key_fields`), resolved; undefined when it has none, or when a path
   * does not resolve (the lint reports it, and the method is not
   * deduplicated rather than deduplicated on a part of its key).
   */
  readonly keyFields: readonly FieldPath[] | undefined;
  /** The fields left out of the fingerprint (`fingerprint_exclude`) that resolve. */
  readonly fingerprintExclude: readonly FieldPath[];
}

/**
 * Reads the idempotency policy of a method from its descriptor.
 *
 * @private Internal code, does not follow semantic versioning.
 */
export function resolveMethodPolicy(method: DescMethod, ext: IdempotencyExtensions): MethodIdempotencyPolicy {
  const lookup = findRequestIdField(method.input, ext);
  const requestIdField = method.methodKind === "unary" && lookup.kind === "found" ? lookup.field : undefined;
  const options = ext.policy && hasOption(method, ext.policy) ? getOption(method, ext.policy) : undefined;
  const retention = options?.retention;
  const tombstone = options?.tombstoneRetention;
  const keyPaths = options?.keyFields ?? [];
  const keyFields = keyPaths.map((path) => resolveFieldPath(method.input, path));
  const naturalKey =
    method.methodKind === "unary" && lookup.kind === "none" && keyFields.length > 0 && keyFields.every((k) => k.ok)
      ? keyFields.map((k) => (k.ok ? k.value : undefined)).filter((k) => k !== undefined)
      : undefined;
  const fingerprintExclude = (options?.fingerprintExclude ?? [])
    .map((path) => resolveFieldPath(method.input, path))
    .flatMap((k) => (k.ok ? [k.value] : []));
  const mode = options?.onDuplicate;
  return {
    method,
    requestIdField,
    autoFill: lookup.kind === "found" && lookup.autoFill,
    keyRequired: options?.keyRequired ?? false,
    keyFormat: options?.keyFormat === keyFormatOpaque ? "opaque" : "uuid",
    retentionMs: retention ? durationMs(retention) : undefined,
    // Set to zero, it turns tombstones off for the method.
    tombstoneRetentionMs: tombstone ? durationMs(tombstone) : undefined,
    safeToRetry:
      method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS ||
      method.idempotency === MethodOptions_IdempotencyLevel.IDEMPOTENT,
    duplicateMode: mode === duplicateModeReject ? "reject" : mode === duplicateModeReplay ? "replay" : undefined,
    keyFields: naturalKey,
    fingerprintExclude,
  };
}

function durationMs(duration: { readonly seconds: bigint; readonly nanos: number }): number {
  return Number(duration.seconds) * 1000 + Math.floor(duration.nanos / 1e6);
}

/**
 * Returns a `resolveMethodPolicy` that remembers its answer per method, for the
 * call path of interceptors.
 */
export function createMethodPolicyCache(ext: IdempotencyExtensions): (method: DescMethod) => MethodIdempotencyPolicy {
  const cache = new WeakMap<DescMethod, MethodIdempotencyPolicy>();
  return (method) => {
    let found = cache.get(method);
    if (found === undefined) {
      found = resolveMethodPolicy(method, ext);
      cache.set(method, found);
    }
    return found;
  };
}
