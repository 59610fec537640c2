import type { DescField, DescFile, DescMethod } from "@bufbuild/protobuf";
import type { IdempotencyExtensions } from "../policy/idempotency-extensions.js";
import { resolveMethodPolicy } from "../policy/method-policy.js";
import { findMisplacedRequestIdMarks } from "../policy/misplaced-request-id-marks.js";
import { findRequestIdField } from "../policy/request-id-field.js";
import { findSourceLocation, isLintIgnored } from "./source-location.js";

/** The rules of `connect-idempotency lint`. */
export const LintRule = {
  /** A unary method neither carries a request ID nor is marked NO_SIDE_EFFECTS or IDEMPOTENT. */
  METHOD_WITHOUT_REQUEST_ID: "METHOD_WITHOUT_REQUEST_ID",
  /** A request ID mark on a field of a request that cannot carry one: not a singular string, in a oneof, or one of several. */
  REQUEST_ID_FIELD_INVALID: "REQUEST_ID_FIELD_INVALID",
  /** A request ID mark on a field of a message that is no method's input, such as a message nested in a request. */
  REQUEST_ID_NOT_TOP_LEVEL: "REQUEST_ID_NOT_TOP_LEVEL",
  /** `key_required` and `(google.api.field_behavior) = REQUIRED` on the request ID disagree. */
  KEY_REQUIRED_MISMATCH: "KEY_REQUIRED_MISMATCH",
} as const;

/** One of `LintRule`. */
export type LintRule = (typeof LintRule)[keyof typeof LintRule];

/** A problem the lint found, at the declaration it is about. */
export interface LintFinding {
  readonly rule: LintRule;
  /** The proto file, as imported (`demo/v1/payments.proto`). */
  readonly file: DescFile;
  /** 1-based; 0 when the file carries no source info. */
  readonly line: number;
  /** 1-based; 0 when the file carries no source info. */
  readonly column: number;
  /** The fully qualified name of the method or field. */
  readonly element: string;
  readonly message: string;
}

/**
 * Checks the idempotency marks of the methods and messages declared in
 * `files` (the user's own), resolving types across `allFiles` (imports
 * included). Findings are sorted by file and position. An element whose
 * leading comment says `connect-idempotency:lint:ignore <RULE>` is exempt
 * from that rule.
 */
export function lintIdempotencySchema(
  files: readonly DescFile[],
  allFiles: readonly DescFile[],
  ext: IdempotencyExtensions,
): LintFinding[] {
  const own = new Set(files);
  const findings = new Map<string, LintFinding>();
  const report = (rule: LintRule, desc: DescField | DescMethod, message: string) => {
    if (!own.has(desc.parent.file) || isLintIgnored(desc, rule)) {
      return;
    }
    const element = `${desc.parent.typeName}.${desc.name}`;
    // A request message shared by several methods is reported once.
    findings.set(`${rule} ${element} ${message}`, { rule, file: desc.parent.file, ...findSourceLocation(desc), element, message });
  };
  for (const file of files) {
    for (const service of file.services) {
      for (const method of service.methods) {
        lintMethod(method, ext, report);
      }
    }
  }
  for (const field of findMisplacedRequestIdMarks(files, allFiles, ext)) {
    report(
      LintRule.REQUEST_ID_NOT_TOP_LEVEL,
      field,
      `field ${field.name} is marked as request ID, but ${field.parent.typeName} is no method's input; ` +
        "only top-level string fields of a request message are read: move the mark to the request",
    );
  }
  return [...findings.values()].sort(
    (a, b) => a.file.name.localeCompare(b.file.name) || a.line - b.line || a.column - b.column,
  );
}

function lintMethod(
  method: DescMethod,
  ext: IdempotencyExtensions,
  report: (rule: LintRule, desc: DescField | DescMethod, message: string) => void,
): void {
  const lookup = findRequestIdField(method.input, ext);
  if (lookup.kind === "invalid") {
    for (const problem of lookup.problems) {
      report(LintRule.REQUEST_ID_FIELD_INVALID, problem.field, `${problem.message}; a request ID is one singular string field outside any oneof`);
    }
  }
  if (method.methodKind !== "unary") {
    return;
  }
  const policy = resolveMethodPolicy(method, ext);
  if (lookup.kind === "none" && !policy.safeToRetry) {
    report(
      LintRule.METHOD_WITHOUT_REQUEST_ID,
      method,
      `rpc ${method.name} has no request ID: mark a top-level string field of ${method.input.typeName} with ` +
        "(idempotency.v1.request_id) = true, or set idempotency_level = NO_SIDE_EFFECTS or IDEMPOTENT if repeating it is harmless",
    );
  }
  if (lookup.kind !== "found") {
    return;
  }
  if (policy.keyRequired && policy.autoFill) {
    report(
      LintRule.KEY_REQUIRED_MISMATCH,
      method,
      `rpc ${method.name} sets key_required, but its request ID field ${lookup.field.name} is not ` +
        "(google.api.field_behavior) = REQUIRED, so generated clients fill it with a new ID on every call and a repeated " +
        "operation is never recognized: mark the field REQUIRED so that callers pass their own, or drop key_required",
    );
  } else if (!policy.keyRequired && !policy.autoFill) {
    report(
      LintRule.KEY_REQUIRED_MISMATCH,
      method,
      `rpc ${method.name}: request ID field ${lookup.field.name} is REQUIRED, so clients never fill it in, but the method ` +
        "does not set key_required, so a call without one runs without deduplication: set (idempotency.v1.policy) = {key_required: true}",
    );
  }
}
