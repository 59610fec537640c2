import { field_behavior } from "../../gen/google/api/field_behavior_pb.js";
import { field_info } from "../../gen/google/api/field_info_pb.js";
import { policy, request_id } from "../../gen/idempotency/v1/idempotency_pb.js";
import type { IdempotencyExtensions } from "./idempotency-extensions.js";

/**
 * The idempotency extensions as generated in `gen/`, for code that runs after
 * generation: the server interceptor, the client interceptors and the lint.
 */
export const runtimeExtensions: IdempotencyExtensions = {
  requestId: request_id,
  policy,
  fieldInfo: field_info,
  fieldBehavior: field_behavior,
};
