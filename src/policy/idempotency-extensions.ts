import type { DescExtension, DescFile } from "@bufbuild/protobuf";
import type { GenExtension } from "@bufbuild/protobuf/codegenv2";
import type { FieldOptions, MethodOptions } from "@bufbuild/protobuf/wkt";
import type { FieldBehavior } from "../../gen/google/api/field_behavior_pb.js";
import type { FieldInfo } from "../../gen/google/api/field_info_pb.js";
import type { MethodPolicy } from "../../gen/idempotency/v1/idempotency_pb.js";

/**
 * The proto extensions that mark request IDs and method policies.
 *
 * At run time they come from the generated code (see `runtimeExtensions`).
 * The protoc plugin cannot import `gen/` (buf deletes it before a clean
 * generate), so it finds them by name among the files it is given. An absent
 * extension simply never matches.
 */
export interface IdempotencyExtensions {
  /** `(idempotency.v1.request_id)`. */
  readonly requestId?: GenExtension<FieldOptions, boolean>;
  /** `(idempotency.v1.policy)`. */
  readonly policy?: GenExtension<MethodOptions, MethodPolicy>;
  /** Google's `(google.api.field_info)`. */
  readonly fieldInfo?: GenExtension<FieldOptions, FieldInfo>;
  /** Google's `(google.api.field_behavior)`. */
  readonly fieldBehavior?: GenExtension<FieldOptions, FieldBehavior[]>;
}

const extensionNames = {
  requestId: "idempotency.v1.request_id",
  policy: "idempotency.v1.policy",
  fieldInfo: "google.api.field_info",
  fieldBehavior: "google.api.field_behavior",
} as const;

/**
 * Finds the idempotency extensions by their fully qualified names in a set of
 * file descriptors, such as the files of a protoc plugin request.
 */
export function findIdempotencyExtensions(files: Iterable<DescFile>): IdempotencyExtensions {
  const byName = new Map<string, DescExtension>();
  for (const file of files) {
    for (const ext of file.extensions) {
      byName.set(ext.typeName, ext);
    }
  }
  // The cast only adds the value type: getOption checks the extendee and
  // decodes by field number, exactly as for generated extensions.
  return {
    requestId: byName.get(extensionNames.requestId) as GenExtension<FieldOptions, boolean> | undefined,
    policy: byName.get(extensionNames.policy) as GenExtension<MethodOptions, MethodPolicy> | undefined,
    fieldInfo: byName.get(extensionNames.fieldInfo) as GenExtension<FieldOptions, FieldInfo> | undefined,
    fieldBehavior: byName.get(extensionNames.fieldBehavior) as GenExtension<FieldOptions, FieldBehavior[]> | undefined,
  };
}
