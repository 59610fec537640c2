import { createHash } from "node:crypto";
import type { RecordKey } from "../store/idempotency-store.js";

/**
 * Hashes a record key for logs, metrics and spans, where request IDs must not
 * appear in clear: the first 32 hex characters of a SHA-256 over scope,
 * method and key (JSON-encoded, so that no separator is ambiguous).
 */
export function hashRecordKey(key: RecordKey): string {
  return createHash("sha256")
    .update(JSON.stringify([key.scope, key.method, key.key]))
    .digest("hex")
    .slice(0, 32);
}
