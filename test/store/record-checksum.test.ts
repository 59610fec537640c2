import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { recordChecksum, recordChecksumHex, type RecordChecksumFields } from "../../src/store/record-checksum.js";

/** The layout `recordChecksum` documents, written the plain way (BigInt for the 8-byte integers). */
function reference(fields: RecordChecksumFields): string {
  const parts: Buffer[] = [];
  for (const text of [fields.scope, fields.method, fields.key, fields.fingerprint, fields.status]) {
    const bytes = Buffer.from(text, "utf8");
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.byteLength);
    parts.push(length, bytes);
  }
  const lifetime = Buffer.alloc(8);
  lifetime.writeBigInt64BE(BigInt(fields.lifetimeMs));
  const outcomeLength = Buffer.alloc(4);
  outcomeLength.writeUInt32BE(fields.outcome === null ? 0xffffffff : fields.outcome.byteLength);
  parts.push(lifetime, outcomeLength);
  if (fields.outcome !== null) parts.push(Buffer.from(fields.outcome));
  if (fields.replayLifetimeMs !== undefined && fields.replayLifetimeMs !== null) {
    const tail = Buffer.alloc(12);
    tail.writeBigInt64BE(BigInt(fields.replayLifetimeMs));
    tail.writeInt32BE(fields.outcomeCode ?? 0, 8);
    parts.push(tail);
  }
  return createHash("sha256").update(Buffer.concat(parts)).digest("hex").slice(0, 32);
}

const fields: RecordChecksumFields = {
  scope: "tenant-é",
  method: "demo.v1.PaymentService/CreatePayment",
  key: "0b7e2f4c-7a43-4d0e-9e59-2b8b3f1f6c11",
  fingerprint: "a".repeat(64),
  status: "completed",
  lifetimeMs: 86_400_000,
  outcome: new Uint8Array([10, 3, 1, 2, 3]),
  replayLifetimeMs: 3_600_000,
  outcomeCode: 5,
};

describe("recordChecksum()", () => {
  it("hashes the documented layout, for negative, large and small lifetimes", () => {
    for (const ms of [
      0,
      1,
      -1,
      0xffffffff,
      0x1_0000_0000,
      -0x1_0000_0001,
      2 ** 40 + 3,
      -(2 ** 52),
      2 ** 53 - 1,
      -(2 ** 53 - 1),
      2 ** 60,
    ]) {
      const withTail = { ...fields, lifetimeMs: ms, replayLifetimeMs: -ms };
      expect(recordChecksumHex(withTail)).toBe(reference(withTail));
      const running = { ...fields, lifetimeMs: ms, outcome: null, replayLifetimeMs: null, outcomeCode: null };
      expect(recordChecksumHex(running)).toBe(reference(running));
    }
    const large = { ...fields, outcome: new Uint8Array(20_000).fill(7) };
    expect(recordChecksum(large).toString("hex")).toBe(reference(large));
  });

  it("throws for a lifetime that is not an integer, as BigInt does", () => {
    expect(() => recordChecksumHex({ ...fields, lifetimeMs: 1.5 })).toThrow(RangeError);
    expect(() => recordChecksumHex({ ...fields, lifetimeMs: Number.NaN })).toThrow(RangeError);
    expect(() => recordChecksumHex({ ...fields, replayLifetimeMs: 0.5 })).toThrow(RangeError);
  });
});
