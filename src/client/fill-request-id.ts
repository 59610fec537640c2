import { type DescMessage, clone, isMessage } from "@bufbuild/protobuf";

/**
 * The request ID a request carries in `field`, or undefined when it is unset
 * or empty.
 */
export function readRequestId(request: object, field: string): string | undefined {
  const value = (request as Record<string, unknown>)[field];
  return typeof value === "string" && value !== "" ? value : undefined;
}

/**
 * Returns the request with `field` set to a new ID from `generate` when it is
 * unset or empty, and the request as it is otherwise: a caller's own ID is
 * never replaced. The caller's object is never modified; a message is copied.
 */
export function fillRequestId<T extends object>(
  schema: DescMessage,
  request: T,
  field: string,
  generate: () => string,
): { readonly request: T; readonly requestId: string } {
  const existing = readRequestId(request, field);
  if (existing !== undefined) {
    return { request, requestId: existing };
  }
  const requestId = generate();
  // A message may keep field defaults on its prototype (proto2, editions), so
  // it is cloned; a plain init object is copied.
  const filled = isMessage(request, schema) ? (clone(schema, request) as T) : { ...request };
  (filled as Record<string, unknown>)[field] = requestId;
  return { request: filled, requestId };
}
