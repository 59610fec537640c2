import type { DescField } from "@bufbuild/protobuf";
import type { UnaryRequest } from "@connectrpc/connect";
import { ErrorReason } from "../errors/error-reason.js";
import { createIdempotencyError } from "../errors/idempotency-error.js";
import type { MethodIdempotencyPolicy } from "../policy/method-policy.js";
import { canonicalizeRequestId } from "../policy/request-id-format.js";

/**
 * The canonical request ID of a call, or undefined when it has none and may
 * run without deduplication. Throws INVALID_ARGUMENT when the method requires
 * a request ID or the ID has the wrong format.
 */
export function requestIdOf(req: UnaryRequest, policy: MethodIdempotencyPolicy, field: DescField): string | undefined {
  const value = (req.message as unknown as Record<string, unknown>)[field.localName] as string;
  if (value === "") {
    if (policy.keyRequired) {
      throw createIdempotencyError(
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
      ErrorReason.REQUEST_ID_INVALID,
      `the request ID in field ${field.name} ${check.problem}`,
      { metadata: { field: field.name } },
    );
  }
  return check.key;
}
