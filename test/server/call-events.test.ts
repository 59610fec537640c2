import { describe, expect, it } from "vitest";
import { emit, timed } from "../../src/server/call-events.js";
import { hashRecordKey } from "../../src/server/key-hash.js";
import { useStepHarness } from "../support/dedupe-call-fixture.js";

const { open } = useStepHarness();

describe("emit()", () => {
  it("reports the decision with the method, the keyed hash of the key (never the key), and the store calls since the last event", async () => {
    const h = open({ keyHashSecret: "s3cret" });
    const call = await h.call();
    await timed(call, "claim", async () => "claimed");
    emit(call, "claimed", { attempt: 1 });
    emit(call, "completed");
    const [claimed, completed] = h.events;
    expect(claimed).toMatchObject({
      type: "claimed",
      attempt: 1,
      method: "demo.v1.PaymentService/CreatePayment",
      keyHash: hashRecordKey(call.record, "s3cret"),
      storeCalls: [{ operation: "claim", failed: false }],
    });
    expect(JSON.stringify(h.events)).not.toContain(call.record.key);
    expect(completed?.storeCalls).toEqual([]);
    expect(completed?.storeMs).toBe(call.storeMs);
  });

  it("builds nothing when nobody listens: no key hash, and the store calls are dropped", async () => {
    const h = open({ onEvent: undefined });
    const call = await h.call();
    await timed(call, "claim", async () => "claimed");
    emit(call, "claimed");
    expect(call.keyHash).toBeUndefined();
    expect(call.storeCalls).toEqual([]);
  });

  it("never lets a throwing listener fail the call", async () => {
    const h = open({
      onEvent: () => {
        throw new Error("listener broke");
      },
    });
    const call = await h.call();
    expect(() => emit(call, "claimed")).not.toThrow();
  });
});

describe("timed()", () => {
  it("adds the duration of each store operation to the call's store time and records whether it failed", async () => {
    const h = open();
    const call = await h.call();
    expect(await timed(call, "get", () => new Promise((resolve) => setTimeout(() => resolve("read"), 20)))).toBe(
      "read",
    );
    const failure = new Error("store down");
    await expect(timed(call, "complete", () => Promise.reject(failure))).rejects.toBe(failure);
    expect(call.storeCalls).toMatchObject([
      { operation: "get", failed: false },
      { operation: "complete", failed: true },
    ]);
    expect(call.storeCalls[0]?.ms).toBeGreaterThanOrEqual(15);
    expect(call.storeMs).toBeCloseTo((call.storeCalls[0]?.ms ?? 0) + (call.storeCalls[1]?.ms ?? 0), 6);
  });

  it("still counts store time, but keeps no list of store calls, when nobody listens", async () => {
    const h = open({ onEvent: undefined });
    const call = await h.call();
    await timed(call, "get", () => new Promise((resolve) => setTimeout(resolve, 10)));
    expect(call.storeCalls).toEqual([]);
    expect(call.storeMs).toBeGreaterThanOrEqual(5);
  });
});
