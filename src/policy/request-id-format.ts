import type { RequestIdFormat } from "./method-policy.js";

/**
 * A request ID checked against its method's format.
 *
 * @private Internal code, does not follow semantic versioning.
 */
export type RequestIdCheck =
  | { readonly ok: true; readonly key: string }
  | { readonly ok: false; readonly problem: string };

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const nilUuid = "00000000-0000-0000-0000-000000000000";
// Printable ASCII, space included, as in the IETF Idempotency-Key draft's examples.
const opaquePattern = /^[\x20-\x7e]{1,255}$/;

/**
 * Checks a non-empty request ID and returns its canonical form: UUIDs in
 * lowercase, so that case never makes two keys of one request.
 *
 * @private Internal code, does not follow semantic versioning.
 */
export function canonicalizeRequestId(value: string, format: RequestIdFormat): RequestIdCheck {
  if (format === "uuid") {
    if (!uuidPattern.test(value)) {
      return { ok: false, problem: "must be a UUID such as 3f0c8d4e-5b7a-4c1e-9d2f-6a8b0c1d2e3f" };
    }
    const key = value.toLowerCase();
    if (key === nilUuid) {
      return { ok: false, problem: "must not be the nil UUID" };
    }
    return { ok: true, key };
  }
  if (!opaquePattern.test(value)) {
    return { ok: false, problem: "must be 1 to 255 printable ASCII characters" };
  }
  return { ok: true, key: value };
}
