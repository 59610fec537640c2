import type { RecordKey } from "../store/idempotency-store.js";
import { sha256Hex } from "./sha256-hex.js";

/**
 * Hashes a record key for logs, metrics and spans, where request IDs must not
 * appear in clear: the first 32 hex characters of a SHA-256 over scope,
 * method and key (JSON-encoded, so that no separator is ambiguous).
 */
export function hashRecordKey(key: RecordKey): string {
  return sha256Hex(JSON.stringify([key.scope, key.method, key.key])).slice(0, 32);
}
