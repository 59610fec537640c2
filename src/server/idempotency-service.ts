import { create, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type HandlerContext,
  type ServiceImpl,
  type UnaryRequest,
} from "@connectrpc/connect";
import {
  type GetOutcomeRequest,
  type GetOutcomeResponse,
  GetOutcomeResponseSchema,
  IdempotencyService,
  OutcomeState,
} from "../../gen/idempotency/v1/idempotency_service_pb.js";
import { ErrorReason } from "../errors/error-reason.js";
import { createIdempotencyError } from "../errors/idempotency-error.js";
import type { IdempotencyExtensions } from "../policy/idempotency-extensions.js";
import { createMethodPolicyCache } from "../policy/method-policy.js";
import { canonicalizeRequestId } from "../policy/request-id-format.js";
import { runtimeExtensions } from "../policy/runtime-extensions.js";
import type { IdempotencyStore } from "../store/idempotency-store.js";
import { decodeStoredOutcome } from "./stored-outcome.js";

/** Options of `createIdempotencyService`. */
export interface IdempotencyServiceOptions {
  /** The interceptor's store. */
  readonly store: IdempotencyStore;
  /**
   * The interceptor's scope function, unchanged: a lookup only ever reads
   * records of the caller's own scope. It sees the GetOutcome call (its
   * headers and context values, as set by the auth interceptor). Default:
   * one shared scope `""`, as the interceptor's.
   */
  readonly scope?: (req: UnaryRequest) => string | Promise<string>;
  /**
   * The services whose outcomes can be looked up (those the interceptor
   * deduplicates): a method of another service is NOT_FOUND, and a
   * response is packed with its method's output type.
   */
  readonly services: readonly DescService[];
  /** The proto extensions that mark request IDs. Default `runtimeExtensions`. */
  readonly extensions?: IdempotencyExtensions;
}

/**
 * Creates the implementation of `idempotency.v1.IdempotencyService`, which
 * answers "what became of this request ID?" without the request: in
 * progress (with the lease end), completed (the stored response packed as
 * `google.protobuf.Any`, the stored error, or, for DUPLICATE_MODE_REJECT,
 * only that it ran), interrupted, or unknown. Mount it next to the services
 * it reports on, behind the same auth interceptor:
 *
 * ```ts
 * router.service(PaymentService, payments);
 * router.service(IdempotencyService, createIdempotencyService({ store, scope, services: [PaymentService] }));
 * ```
 *
 * Its own access is the application's to guard: the interceptor does not
 * deduplicate it (it has no request ID), and a lookup reveals stored
 * responses of the caller's scope, so it needs the same authentication as
 * the methods whose outcomes it returns.
 */
export function createIdempotencyService(options: IdempotencyServiceOptions): ServiceImpl<typeof IdempotencyService> {
  const { store } = options;
  const scopeOf = options.scope ?? (() => "");
  const policyOf = createMethodPolicyCache(options.extensions ?? runtimeExtensions);
  const methods = new Map<string, DescMethod>();
  for (const service of options.services) {
    for (const method of service.methods) {
      methods.set(`${service.typeName}/${method.name}`, method);
    }
  }
  return {
    async getOutcome(req, ctx) {
      const method = methods.get(req.method);
      if (method === undefined) {
        throw new ConnectError(
          `method ${JSON.stringify(req.method)} is not among the services this lookup serves; ` +
            "name it as package.Service/Method",
          Code.NotFound,
        );
      }
      const scope = await resolveScope(scopeOf, req, ctx);
      const key = canonicalKey(req, policyOf(method));
      const record = await store.get({ scope, method: req.method, key });
      if (record === undefined || record.expiresAt <= record.readAt) {
        return create(GetOutcomeResponseSchema, { state: OutcomeState.UNKNOWN });
      }
      const times = {
        firstExecutedAt: timestampFromMs(record.createdAt),
        expiresAt: timestampFromMs(record.expiresAt),
        attempt: record.attempt,
      };
      switch (record.status) {
        case "in_progress":
          return create(GetOutcomeResponseSchema, {
            state: OutcomeState.IN_PROGRESS,
            leaseUntil: timestampFromMs(record.leaseUntil),
            ...times,
          });
        case "interrupted":
          return create(GetOutcomeResponseSchema, { state: OutcomeState.INTERRUPTED, ...times });
        case "completed":
          return create(GetOutcomeResponseSchema, {
            state: OutcomeState.COMPLETED,
            ...times,
            completedAt: timestampFromMs(record.updatedAt),
            result: storedResult(method, record.outcome ?? new Uint8Array(0)),
          });
        case "tombstoned":
          // Past its replay window: what it answered, not the answer itself.
          return create(GetOutcomeResponseSchema, {
            state: OutcomeState.TOMBSTONED,
            ...times,
            completedAt: timestampFromMs(record.updatedAt),
            originalCode: record.outcomeCode ?? 0,
          });
      }
    },
  };
}

/**
 * Mounts `idempotency.v1.IdempotencyService` (`createIdempotencyService`)
 * on a router, with one call next to the application's own services.
 */
export function registerIdempotencyService(router: ConnectRouter, options: IdempotencyServiceOptions): ConnectRouter {
  return router.service(IdempotencyService, createIdempotencyService(options));
}

/** The request ID in the form the interceptor keys records by. */
function canonicalKey(req: GetOutcomeRequest, policy: ReturnType<ReturnType<typeof createMethodPolicyCache>>): string {
  if (policy.requestIdField === undefined) {
    // A natural key is looked up as the server forms it.
    return req.requestId;
  }
  const check = canonicalizeRequestId(req.requestId, policy.keyFormat);
  if (!check.ok) {
    throw createIdempotencyError(ErrorReason.REQUEST_ID_INVALID, `the request ID ${check.problem}`, {
      metadata: { field: "request_id" },
    });
  }
  return check.key;
}

function storedResult(method: DescMethod, bytes: Uint8Array): GetOutcomeResponse["result"] {
  const outcome = decodeStoredOutcome(bytes);
  switch (outcome.kind) {
    case "response":
      return {
        case: "response",
        value: {
          $typeName: "google.protobuf.Any",
          typeUrl: `type.googleapis.com/${method.output.typeName}`,
          value: outcome.response,
        },
      };
    case "executed":
      return {
        case: "executed",
        value: { $typeName: "idempotency.v1.StoredExecution", resourceName: outcome.resourceName },
      };
    case "error": {
      const { error } = outcome;
      return {
        case: "error",
        value: {
          $typeName: "idempotency.v1.StoredError",
          code: error.code,
          message: error.rawMessage,
          details: error.details.map((d) => {
            const raw = d as { type: string; value: Uint8Array };
            return { $typeName: "google.protobuf.Any", typeUrl: `type.googleapis.com/${raw.type}`, value: raw.value };
          }),
        },
      };
    }
  }
}

// The scope function takes a UnaryRequest, as in the interceptor; a
// handler has the same parts in its context.
async function resolveScope(
  scopeOf: (req: UnaryRequest) => string | Promise<string>,
  message: GetOutcomeRequest,
  ctx: HandlerContext,
): Promise<string> {
  // The handler runs GetOutcome, a unary method.
  const method = ctx.method as UnaryRequest["method"];
  const req: UnaryRequest = {
    stream: false,
    service: ctx.service,
    method,
    requestMethod: ctx.requestMethod,
    url: ctx.url,
    signal: ctx.signal,
    header: ctx.requestHeader,
    contextValues: ctx.values,
    message,
  };
  let scope: unknown;
  try {
    scope = await scopeOf(req);
  } catch (thrown) {
    if (thrown instanceof ConnectError) {
      throw thrown;
    }
    throw createIdempotencyError(ErrorReason.SCOPE_FAILED, "the scope function failed, so nothing was looked up", {
      cause: thrown,
    });
  }
  if (typeof scope !== "string") {
    throw createIdempotencyError(
      ErrorReason.SCOPE_INVALID,
      "the scope function returned no string, so nothing was looked up; put the auth interceptor before this service's handlers",
    );
  }
  return scope;
}
