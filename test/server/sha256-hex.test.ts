import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { sha256Hex } from "../../src/server/sha256-hex.js";

describe("sha256Hex", () => {
  it("gives the FIPS 180-2 digest of 'abc'", () => {
    expect(sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  it("hashes bytes and the UTF-8 of a string alike, as a Hash object does", () => {
    const text = "Zahlung über 129,99 € 🧾";
    const bytes = new TextEncoder().encode(text);
    const expected = createHash("sha256").update(bytes).digest("hex");
    expect(sha256Hex(bytes)).toBe(expected);
    expect(sha256Hex(text)).toBe(expected);
    expect(sha256Hex(new Uint8Array(0))).toBe(createHash("sha256").digest("hex"));
  });
});
