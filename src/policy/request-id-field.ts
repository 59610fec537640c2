import { type DescField, type DescMessage, ScalarType, getOption, hasOption } from "@bufbuild/protobuf";
import { FieldDescriptorProto_Label } from "@bufbuild/protobuf/wkt";
import type { FieldBehavior } from "../../gen/google/api/field_behavior_pb.js";
import type { FieldInfo_Format } from "../../gen/google/api/field_info_pb.js";
import type { IdempotencyExtensions } from "./idempotency-extensions.js";

// Enum numbers instead of value imports: the protoc plugin loads this file
// while buf has deleted gen/ for a clean generate, so only type imports from
// gen/ may appear here.
const fieldBehaviorRequired: FieldBehavior.REQUIRED = 2;
const fieldInfoFormatUuid4: FieldInfo_Format.UUID4 = 1;

/** How a field was marked as the request ID. */
export type RequestIdMark = "idempotency.v1.request_id" | "google.api.field_info";

/**
 * The request ID field of a message, or why there is none that can be used.
 *
 * - `found`: exactly one usable field. `autoFill` is false when AIP-4235 says a
 *   client must not fill it in (the field is marked REQUIRED).
 * - `none`: no field is marked.
 * - `invalid`: fields are marked, but none can carry a request ID; `problems`
 *   says why, one entry per marked field.
 */
export type RequestIdFieldLookup =
  | { readonly kind: "found"; readonly field: DescField; readonly mark: RequestIdMark; readonly autoFill: boolean }
  | { readonly kind: "none" }
  | { readonly kind: "invalid"; readonly problems: readonly RequestIdFieldProblem[] };

/** A marked field that cannot be a request ID. */
export interface RequestIdFieldProblem {
  /** The marked field. */
  readonly field: DescField;
  /** A sentence a person understands. */
  readonly message: string;
}

/** Which mark a field carries, if any. */
export function requestIdMarkOf(field: DescField, ext: IdempotencyExtensions): RequestIdMark | undefined {
  if (ext.requestId && hasOption(field, ext.requestId) && getOption(field, ext.requestId)) {
    return "idempotency.v1.request_id";
  }
  if (
    ext.fieldInfo &&
    hasOption(field, ext.fieldInfo) &&
    getOption(field, ext.fieldInfo).format === fieldInfoFormatUuid4
  ) {
    return "google.api.field_info";
  }
  return undefined;
}

/** Why a marked field cannot carry a request ID, or undefined when it can. */
export function requestIdFieldProblem(field: DescField): string | undefined {
  if (field.fieldKind !== "scalar" || field.scalar !== ScalarType.STRING) {
    return `field ${field.parent.typeName}.${field.name} is marked as request ID but is not a singular string`;
  }
  if (field.oneof !== undefined) {
    return `field ${field.parent.typeName}.${field.name} is marked as request ID but is part of oneof ${field.oneof.name}`;
  }
  return undefined;
}

/**
 * Finds the request ID field among the top-level fields of a request message.
 */
export function findRequestIdField(message: DescMessage, ext: IdempotencyExtensions): RequestIdFieldLookup {
  const usable: { field: DescField; mark: RequestIdMark }[] = [];
  const problems: RequestIdFieldProblem[] = [];
  for (const field of message.fields) {
    const mark = requestIdMarkOf(field, ext);
    if (mark === undefined) {
      continue;
    }
    const problem = requestIdFieldProblem(field);
    if (problem !== undefined) {
      problems.push({ field, message: problem });
    } else {
      usable.push({ field, mark });
    }
  }
  if (usable.length > 1) {
    return {
      kind: "invalid",
      problems: usable.map(({ field }) => ({
        field,
        message: `message ${message.typeName} marks more than one request ID field (${usable.map((u) => u.field.name).join(", ")})`,
      })),
    };
  }
  const only = usable[0];
  if (only !== undefined) {
    return { kind: "found", field: only.field, mark: only.mark, autoFill: !isRequiredField(only.field, ext) };
  }
  return problems.length > 0 ? { kind: "invalid", problems } : { kind: "none" };
}

/** Whether a field is `required` (proto2) or `(google.api.field_behavior) = REQUIRED`. */
export function isRequiredField(field: DescField, ext: IdempotencyExtensions): boolean {
  if (field.proto.label === FieldDescriptorProto_Label.REQUIRED) {
    return true;
  }
  return (
    ext.fieldBehavior !== undefined &&
    hasOption(field, ext.fieldBehavior) &&
    getOption(field, ext.fieldBehavior).includes(fieldBehaviorRequired)
  );
}
