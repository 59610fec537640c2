import { describe, expect, it } from "vitest";
import { isoTime } from "../../src/server/iso-time.js";

describe("isoTime()", () => {
  it("writes what toISOString writes, across days, hours and padding", () => {
    const day = 86_400_000;
    const times = [0, 1, 9, 10, 99, 100, 999, 1000, 59_999, 60_000, 3_599_999, 3_600_000, day - 1, day, day + 1];
    for (const base of [0, Date.UTC(2026, 11, 1), Date.UTC(2024, 1, 29), Date.UTC(9999, 11, 31)]) {
      for (const offset of times) {
        const ms = base + offset;
        expect(isoTime(ms)).toBe(new Date(ms).toISOString());
      }
    }
    let seed = 7;
    for (let i = 0; i < 2000; i++) {
      seed = (seed * 48_271) % 2_147_483_647;
      const ms = Math.floor((seed / 2_147_483_647) * 253_402_300_799_999);
      expect(isoTime(ms)).toBe(new Date(ms).toISOString());
    }
  });

  it("leaves times before the epoch, past year 9999 and fractions to toISOString", () => {
    for (const ms of [-1, -86_400_001, 253_402_300_800_000, 8.64e15, 1.5, 1_764_547_200_000.25]) {
      expect(isoTime(ms)).toBe(new Date(ms).toISOString());
    }
  });

  it("throws for an invalid time, as toISOString does", () => {
    expect(() => isoTime(Number.NaN)).toThrow(RangeError);
    expect(() => isoTime(8.64e15 + 1)).toThrow(RangeError);
  });
});
