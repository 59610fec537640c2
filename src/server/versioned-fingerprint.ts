import type { DescField, DescMessage, Message } from "@bufbuild/protobuf";
import { type FieldPath, resolveFieldPath } from "../policy/field-path.js";
import { fingerprintRequest } from "./request-fingerprint.js";

// Version 1: the bare hex of the canonical request without its request ID.
const version1 = /^[0-9a-f]{64}$/;
// Version 2: "2:<excluded paths, comma-separated>:<hex>", the same canonical
// form with the excluded fields cleared as well.
const version2 = /^2:([^:]*):([0-9a-f]{64})$/;

/**
 * The fingerprint a record keeps, with the version of its canonical form, so
 * that a later change of the form (or of a method's `fingerprint_exclude`)
 * never turns an honest retry of an older record into REQUEST_ID_REUSED: a
 * record is always compared in the form that wrote it (`createFingerprintMatcher`).
 *
 * Without exclusions this is version 1, the bare hex of
 * `fingerprintRequest`, as every release before fingerprint versions wrote
 * it, so processes of those releases still agree during a rolling upgrade.
 * With exclusions it is version 2, which names the excluded paths:
 * `2:client_sent_at,trace.id:<hex>`. No store schema changes: the version is
 * part of the fingerprint text.
 */
export function versionedFingerprint(
  schema: DescMessage,
  message: Message,
  requestIdField: DescField | undefined,
  exclude: readonly FieldPath[],
): string {
  const hex = fingerprintRequest(schema, message, requestIdField, exclude);
  return exclude.length === 0 ? hex : `2:${exclude.map((p) => p.path).join(",")}:${hex}`;
}

/**
 * Returns whether a stored fingerprint belongs to the same request as
 * `message`, computing the request's fingerprint in the stored one's
 * version (and, for version 2, with the exclusions it names; a path the
 * schema no longer has is skipped, as the field can no longer be set). A
 * version this release does not know never matches.
 */
export function createFingerprintMatcher(
  schema: DescMessage,
  message: Message,
  requestIdField: DescField | undefined,
  current: string,
): (stored: string) => boolean {
  // Almost every record is in the current form: the map of other forms is
  // made only when one shows up.
  let computed: Map<string, string> | undefined;
  return (stored) => {
    if (stored === current) {
      return true;
    }
    computed ??= new Map();
    let mine = computed.get(stored);
    if (mine === undefined) {
      mine = inVersionOf(stored, schema, message, requestIdField) ?? "";
      computed.set(stored, mine);
    }
    return mine === stored;
  };
}

function inVersionOf(
  stored: string,
  schema: DescMessage,
  message: Message,
  requestIdField: DescField | undefined,
): string | undefined {
  if (version1.test(stored)) {
    return fingerprintRequest(schema, message, requestIdField);
  }
  const v2 = version2.exec(stored);
  if (v2 === null) {
    return undefined;
  }
  const paths = (v2[1] ?? "").split(",").filter((p) => p !== "");
  const exclude: FieldPath[] = [];
  for (const path of paths) {
    const resolved = resolveFieldPath(schema, path);
    if (resolved.ok) {
      exclude.push(resolved.value);
    }
  }
  return `2:${paths.join(",")}:${fingerprintRequest(schema, message, requestIdField, exclude)}`;
}
