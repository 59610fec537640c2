import { type DescField, type DescFile, type DescMethod, getOption, hasOption } from "@bufbuild/protobuf";
import { resolveFieldPath } from "../policy/field-path.js";
import type { IdempotencyExtensions } from "../policy/idempotency-extensions.js";
import { resolveMethodPolicy } from "../policy/method-policy.js";
import { findMisplacedRequestIdMarks } from "../policy/misplaced-request-id-marks.js";
import { findRequestIdField, isRequiredField } from "../policy/request-id-field.js";
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
  /**
   * A `key_fields` entry that cannot be part of a natural key: no such field,
   * not a scalar, not `(google.api.field_behavior) = REQUIRED`, or on a
   * method that has a request ID field.
   */
  KEY_FIELD_INVALID: "KEY_FIELD_INVALID",
  /** A `fingerprint_exclude` entry that names no field, or names the request ID or a key field. */
  FINGERPRINT_EXCLUDE_INVALID: "FINGERPRINT_EXCLUDE_INVALID",
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
    findings.set(`${rule} ${element} ${message}`, {
      rule,
      file: desc.parent.file,
      ...findSourceLocation(desc),
      element,
      message,
    });
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
      report(
        LintRule.REQUEST_ID_FIELD_INVALID,
        problem.field,
        `${problem.message}; a request ID is one singular string field outside any oneof`,
      );
    }
  }
  if (method.methodKind !== "unary") {
    return;
  }
  const policy = resolveMethodPolicy(method, ext);
  const options = ext.policy && hasOption(method, ext.policy) ? getOption(method, ext.policy) : undefined;
  const keyPaths = options?.keyFields ?? [];
  lintKeyFields(method, keyPaths, lookup.kind !== "none", ext, report);
  lintFingerprintExclude(method, options?.fingerprintExclude ?? [], keyPaths, lookup, report);
  if (lookup.kind === "none" && !policy.safeToRetry && keyPaths.length === 0) {
    report(
      LintRule.METHOD_WITHOUT_REQUEST_ID,
      method,
      `rpc ${method.name} has no request ID: mark a top-level string field of ${method.input.typeName} with ` +
        "(idempotency.v1.request_id) = true, name the fields of its natural key in (idempotency.v1.policy).key_fields, " +
        "or set idempotency_level = NO_SIDE_EFFECTS or IDEMPOTENT if repeating it is harmless",
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

type Report = (rule: LintRule, desc: DescField | DescMethod, message: string) => void;

// Every entry of key_fields must resolve to a REQUIRED scalar: a key made of
// an optional field would merge unrelated calls that leave it empty.
function lintKeyFields(
  method: DescMethod,
  paths: readonly string[],
  hasRequestId: boolean,
  ext: IdempotencyExtensions,
  report: Report,
): void {
  if (paths.length > 0 && hasRequestId) {
    report(
      LintRule.KEY_FIELD_INVALID,
      method,
      `rpc ${method.name} sets key_fields, but ${method.input.typeName} has a request ID field, which is its key: ` +
        "drop key_fields or the request ID mark",
    );
    return;
  }
  for (const path of paths) {
    const resolved = resolveFieldPath(method.input, path);
    if (!resolved.ok) {
      report(LintRule.KEY_FIELD_INVALID, method, `rpc ${method.name}: key_fields "${path}": ${resolved.problem}`);
      continue;
    }
    const leaf = resolved.value.fields[resolved.value.fields.length - 1];
    if (leaf === undefined) {
      continue;
    }
    if (leaf.fieldKind !== "scalar") {
      report(
        LintRule.KEY_FIELD_INVALID,
        method,
        `rpc ${method.name}: key_fields "${path}" is a ${leaf.fieldKind} field; a key field is a singular scalar (a string or a number)`,
      );
    } else if (!isRequiredField(leaf, ext)) {
      report(
        LintRule.KEY_FIELD_INVALID,
        method,
        `rpc ${method.name}: key_fields "${path}" is not (google.api.field_behavior) = REQUIRED; ` +
          "a call that leaves it empty is refused, so mark it REQUIRED for clients to know",
      );
    }
  }
}

function lintFingerprintExclude(
  method: DescMethod,
  paths: readonly string[],
  keyPaths: readonly string[],
  lookup: ReturnType<typeof findRequestIdField>,
  report: Report,
): void {
  for (const path of paths) {
    const resolved = resolveFieldPath(method.input, path);
    if (!resolved.ok) {
      report(
        LintRule.FINGERPRINT_EXCLUDE_INVALID,
        method,
        `rpc ${method.name}: fingerprint_exclude "${path}": ${resolved.problem}`,
      );
    } else if (lookup.kind === "found" && resolved.value.fields[0] === lookup.field) {
      report(
        LintRule.FINGERPRINT_EXCLUDE_INVALID,
        method,
        `rpc ${method.name}: fingerprint_exclude "${path}" is the request ID field, which is never part of the fingerprint`,
      );
    } else if (keyPaths.includes(path)) {
      report(
        LintRule.FINGERPRINT_EXCLUDE_INVALID,
        method,
        `rpc ${method.name}: fingerprint_exclude "${path}" is a key field; keys are compared by value, so excluding it changes nothing`,
      );
    }
  }
}
