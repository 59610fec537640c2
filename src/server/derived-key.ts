import { createHash } from "node:crypto";
import type { RecordKey } from "../store/idempotency-store.js";

/**
 * The namespace of derived request IDs (UUID v5, RFC 9562 section 5.5). It is
 * fixed forever: changing it would give every step of every request a new
 * downstream key, and a retry across the upgrade would run its downstream
 * calls twice.
 *
 * @private Internal code, does not follow semantic versioning.
 */
export const DERIVED_KEY_NAMESPACE = "c5656c0f-e5eb-411c-883c-6e0ff46e750d";

/** Names one step of one request, for `deriveRequestId`. */
export interface DerivedKeyInput extends RecordKey {
  /** The step, such as `charge`. */
  readonly name: string;
}

/**
 * The request ID for a downstream call made by one step of a request: a UUID
 * v5 in `DERIVED_KEY_NAMESPACE` over the UTF-8 of the JSON array
 * `[scope, method, key, name]` as `JSON.stringify` writes it (no whitespace;
 * the request ID in canonical form). A retry of
 * the request derives the same ID in any process, so the downstream service
 * deduplicates the call; another step or another request ID derives another.
 */
export function deriveRequestId(input: DerivedKeyInput): string {
  return uuidV5(DERIVED_KEY_NAMESPACE, JSON.stringify([input.scope, input.method, input.key, input.name]));
}

/** A name-based UUID (version 5, SHA-1) in lowercase canonical form. */
export function uuidV5(namespace: string, name: string): string {
  const hash = createHash("sha1")
    .update(Buffer.from(namespace.replaceAll("-", ""), "hex"))
    .update(name, "utf8")
    .digest();
  const bytes = hash.subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x50;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
