import { createHmac, randomBytes } from "node:crypto";
import type { RecordKey } from "../store/idempotency-store.js";

/** Hashes record keys for events with one secret. */
export type RecordKeyHasher = (key: RecordKey) => string;

/**
 * Creates the hasher of record keys for logs, metrics and spans, where
 * request IDs must not appear in clear: the first 32 hex characters of an
 * HMAC-SHA-256 keyed with `secret`, over scope, method and key
 * (JSON-encoded, so that no separator is ambiguous). Keyed, because a plain
 * hash of a low-entropy key (`order-004217`) is reversed by trying every
 * candidate. Without a secret, a random one is made: hashes then match only
 * within this process; give every process of a deployment the same secret to
 * correlate them. `api`, the function that was given the secret, starts the
 * error message of an empty one.
 */
export function createRecordKeyHasher(
  secret?: string | Uint8Array,
  api = "createIdempotencyInterceptor",
): RecordKeyHasher {
  const key = secret ?? randomBytes(32);
  if (key.length === 0) {
    throw new Error(`${api}: keyHashSecret must not be empty`);
  }
  return (record) =>
    createHmac("sha256", key)
      .update(JSON.stringify([record.scope, record.method, record.key]))
      .digest("hex")
      .slice(0, 32);
}

/** Hashes one record key as `createRecordKeyHasher(secret)` does. */
export function hashRecordKey(key: RecordKey, secret: string | Uint8Array): string {
  return createRecordKeyHasher(secret, "hashRecordKey")(key);
}
