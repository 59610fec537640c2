import type { UnaryRequest } from "@connectrpc/connect";
import { ErrorReason } from "../errors/error-reason.js";
import { createIdempotencyError } from "../errors/idempotency-error.js";
import { type FieldPath, readFieldPath } from "../policy/field-path.js";

// Request IDs are at most 255 characters; a natural key is held to the same
// bound, so that every store and the admin CLI handle it alike.
const maxNaturalKeyLength = 255;

/**
 * The key of a call of a method with a natural key (`key_fields`): the
 * fields' values, each as `path=value` with both URI-encoded, joined by `&`,
 * such as `order_id=ord_1&shop.id=s%2F2`. Printable ASCII without newlines,
 * like a request ID, and unambiguous. Throws INVALID_ARGUMENT
 * REQUEST_ID_REQUIRED when a field is empty (zero, or a message on the way
 * unset), and REQUEST_ID_INVALID when the key is longer than 255
 * characters.
 */
export function naturalKeyOf(req: UnaryRequest, paths: readonly FieldPath[]): string {
  const parts: string[] = [];
  for (const path of paths) {
    const value = readFieldPath(req.message, path);
    const text = keyText(value);
    if (text === undefined) {
      throw createIdempotencyError(
        ErrorReason.REQUEST_ID_REQUIRED,
        `${req.method.parent.typeName}.${req.method.name} is deduplicated by the fields ` +
          `${paths.map((p) => p.path).join(", ")}, and field ${path.path} is empty`,
        { metadata: { field: path.path } },
      );
    }
    parts.push(`${encodeURIComponent(path.path)}=${encodeURIComponent(text)}`);
  }
  const key = parts.join("&");
  if (key.length > maxNaturalKeyLength) {
    throw createIdempotencyError(
      ErrorReason.REQUEST_ID_INVALID,
      `the key of this request (fields ${paths.map((p) => p.path).join(", ")}) is ${key.length} characters long ` +
        `once encoded; at most ${maxNaturalKeyLength} are accepted`,
      { metadata: { field: paths.map((p) => p.path).join(",") } },
    );
  }
  return key;
}

/** A scalar's key text, or undefined for the zero value (an unset field in proto3). */
function keyText(value: unknown): string | undefined {
  switch (typeof value) {
    case "string":
      return value === "" ? undefined : value;
    case "number":
    case "bigint":
      return value === 0 || value === 0n ? undefined : String(value);
    case "boolean":
      return value ? "true" : undefined;
    default:
      if (value instanceof Uint8Array) {
        return value.byteLength === 0 ? undefined : Buffer.from(value).toString("base64url");
      }
      return undefined;
  }
}
