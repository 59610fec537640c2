import type { DescMessage, DescService, MessageShape } from "@bufbuild/protobuf";
import type { MethodIdempotencyPolicy } from "../policy/method-policy.js";

/**
 * The property name of a top-level string field of a message: what a request
 * ID field can be. Plain `string` for messages without generated types.
 */
export type RequestIdFieldName<I extends DescMessage> = DescMessage extends I
  ? string
  : {
      [K in keyof MessageShape<I>]: K extends `$${string}` ? never : MessageShape<I>[K] extends string ? K : never;
    }[keyof MessageShape<I>] &
      string;

/**
 * What a client does for one unary method. Generated clients carry a static
 * table of these (see `createIdempotentClient`); the interceptors derive them
 * from descriptors at run time with `planFromPolicy`.
 */
export interface ClientMethodPlan<I extends DescMessage = DescMessage> {
  /** The property name of the request ID field; absent when the method has none. */
  readonly requestIdField?: RequestIdFieldName<I>;
  /**
   * Whether the client fills an empty request ID with a fresh UUIDv4. False
   * when AIP-4235 forbids it: the field is marked REQUIRED, so the caller owns
   * the ID.
   */
  readonly autoFill?: boolean;
  /** The method is marked NO_SIDE_EFFECTS or IDEMPOTENT: retried even without a request ID. */
  readonly safeToRetry?: boolean;
  /**
   * The request fields that form the method's natural key (`key_fields`):
   * the server deduplicates by them, so calls are retried as they are, with
   * no request ID to fill in.
   */
  readonly keyFields?: readonly string[];
}

/**
 * The plans of a service's methods by their local name, as generated code
 * passes them. Methods without an entry are called as they are.
 */
export type ClientServicePlan<S extends DescService> = {
  readonly [K in keyof S["method"]]?: ClientMethodPlan<S["method"][K]["input"]>;
};

/**
 * The plan for a method from its descriptor policy, or undefined when a client
 * has nothing to do for it (streaming, or neither a request ID nor safe to
 * retry). The protoc plugin emits exactly these plans.
 */
export function planFromPolicy(policy: MethodIdempotencyPolicy): ClientMethodPlan | undefined {
  if (policy.method.methodKind !== "unary") {
    return undefined;
  }
  if (policy.requestIdField !== undefined) {
    return {
      requestIdField: policy.requestIdField.localName,
      autoFill: policy.autoFill,
      ...(policy.safeToRetry ? { safeToRetry: true } : {}),
    };
  }
  if (policy.keyFields !== undefined) {
    return { keyFields: policy.keyFields.map((k) => k.path), ...(policy.safeToRetry ? { safeToRetry: true } : {}) };
  }
  return policy.safeToRetry ? { safeToRetry: true } : undefined;
}

/** Whether a plan's calls are retried without a request ID: safe to retry, or deduplicated by a natural key. */
export function retriedWithoutRequestId(plan: ClientMethodPlan | undefined): boolean {
  return plan?.safeToRetry === true || (plan?.keyFields?.length ?? 0) > 0;
}
