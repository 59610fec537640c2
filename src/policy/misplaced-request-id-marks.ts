import { type DescField, type DescFile, type DescMessage, getOption, hasOption } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import type { IdempotencyExtensions } from "./idempotency-extensions.js";

/**
 * The fields of messages in `files` that carry `(idempotency.v1.request_id)`
 * although no method can read them: request IDs are top-level fields of a
 * method's input message, and these messages are the input of no method in
 * `allFiles` (a message nested in a request, or used as a field type, for
 * example). Google's `(google.api.field_info).format = UUID4` is not
 * counted here: it also describes ordinary UUID fields.
 */
export function findMisplacedRequestIdMarks(
  files: Iterable<DescFile>,
  allFiles: Iterable<DescFile>,
  ext: IdempotencyExtensions,
): DescField[] {
  const requestId = ext.requestId;
  if (requestId === undefined) {
    return [];
  }
  const inputs = new Set<DescMessage>();
  for (const file of allFiles) {
    for (const service of file.services) {
      for (const method of service.methods) {
        inputs.add(method.input);
      }
    }
  }
  const misplaced: DescField[] = [];
  for (const file of files) {
    for (const type of nestedTypes(file)) {
      if (type.kind !== "message" || inputs.has(type)) {
        continue;
      }
      for (const field of type.fields) {
        if (hasOption(field, requestId) && getOption(field, requestId)) {
          misplaced.push(field);
        }
      }
    }
  }
  return misplaced;
}
