import * as crypto from "node:crypto";

/** How many leading bytes of the SHA-256 a record keeps as its checksum. */
export const recordChecksumBytes = 16;

/**
 * The fields of a stored record that a checksum covers: everything a
 * decision of the interceptor reads from a completed record (whose record it
 * is, which payload, whether it is done, until when it counts, and the
 * answer). Text fields are the values as stored, so that the PostgreSQL
 * store's SQL (`postgresRecordChecksumSql`) hashes the same bytes.
 */
export interface RecordChecksumFields {
  readonly scope: string;
  readonly method: string;
  readonly key: string;
  readonly fingerprint: string;
  /** The stored status column: `in_progress` or `completed`. */
  readonly status: string;
  readonly expiresAt: number;
  readonly outcome: Uint8Array | null;
}

// `crypto.hash` skips building a Hash object; Node 20.12 and later have it.
const oneShot = (crypto as { hash?: (algorithm: string, data: Uint8Array, encoding: "buffer") => Buffer }).hash;

/**
 * The checksum of a record: the first `recordChecksumBytes` of the SHA-256
 * over each text field as its UTF-8 byte length (4 bytes, big-endian) and
 * bytes, in the order of `RecordChecksumFields`, then `expiresAt` as a
 * signed 8-byte big-endian integer, then the outcome as its length and
 * bytes (length 0xFFFFFFFF for none). Length prefixes keep field boundaries
 * unambiguous whatever the text holds. It detects damage (bit rot, a torn
 * page, a stray write), not tampering: it has no secret.
 */
export function recordChecksum(fields: RecordChecksumFields): Buffer {
  const texts = [fields.scope, fields.method, fields.key, fields.fingerprint, fields.status].map((text) =>
    Buffer.from(text, "utf8"),
  );
  const outcome = fields.outcome;
  let size = 8 + 4 + (outcome?.byteLength ?? 0);
  for (const text of texts) {
    size += 4 + text.byteLength;
  }
  const input = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const text of texts) {
    offset = input.writeUInt32BE(text.byteLength, offset);
    offset += text.copy(input, offset);
  }
  offset = input.writeBigInt64BE(BigInt(fields.expiresAt), offset);
  if (outcome === null) {
    input.writeUInt32BE(0xffffffff, offset);
  } else {
    offset = input.writeUInt32BE(outcome.byteLength, offset);
    input.set(outcome, offset);
  }
  const digest = oneShot === undefined ? crypto.createHash("sha256").update(input).digest() : oneShot("sha256", input, "buffer");
  return digest.subarray(0, recordChecksumBytes);
}

/**
 * Whether a stored checksum matches the fields read with it. A record
 * without a checksum (written before the store kept them) passes: there is
 * nothing to compare, and refusing it would turn every old record into an
 * alarm.
 */
export function recordChecksumMatches(stored: Uint8Array | null, fields: RecordChecksumFields): boolean {
  if (stored === null) {
    return true;
  }
  try {
    return Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength).equals(recordChecksum(fields));
  } catch {
    // A damaged column can come back as another type (a time as a float,
    // text as a blob): that is a mismatch too.
    return false;
  }
}
