import { describe, expect, it } from "vitest";
import { createInFlightWaiters } from "../../src/server/in-flight-waiters.js";

const never = new AbortController().signal;

describe("createInFlightWaiters()", () => {
  it("wakes waiters with the outcome and forgets the execution on settle", async () => {
    const waiters = createInFlightWaiters();
    const owner = waiters.begin("k", "fp", 0);
    const waiting = waiters.find("k")!.wait(1_000, never);
    owner.settle({ kind: "outcome", outcome: new Uint8Array([1]), firstExecutedAt: 5, expiresAt: undefined });
    expect(await waiting).toEqual({
      kind: "outcome",
      outcome: new Uint8Array([1]),
      firstExecutedAt: 5,
      expiresAt: undefined,
    });
    expect(waiters.find("k")).toBeUndefined();
    expect(waiters.size).toBe(0);
  });

  it("holds an unwritten outcome: later duplicates get it at once, until settle", async () => {
    const waiters = createInFlightWaiters();
    const owner = waiters.begin("k", "fp", 0);
    owner.hold(new Uint8Array([7]), 5, undefined);
    const held = { kind: "outcome", outcome: new Uint8Array([7]), firstExecutedAt: 5, expiresAt: undefined };
    expect(await waiters.find("k")!.wait(1_000, never)).toEqual(held);
    expect(await waiters.find("k")!.wait(1_000, never)).toEqual(held);
    owner.settle({ kind: "outcome", outcome: new Uint8Array([7]), firstExecutedAt: 5, expiresAt: undefined });
    expect(waiters.find("k")).toBeUndefined();
  });

  it("times out a waiter, and a later execution of the same key is not forgotten by an earlier one", async () => {
    const waiters = createInFlightWaiters();
    const first = waiters.begin("k", "fp", 0);
    expect(await waiters.find("k")!.wait(10, never)).toBeUndefined();
    waiters.begin("k", "fp2", 0);
    first.settle({ kind: "released" });
    expect(waiters.find("k")?.fingerprint).toBe("fp2");
  });
});

describe("withhold()", () => {
  it("stops answering from memory: later duplicates wait for settle instead", async () => {
    const waiters = createInFlightWaiters();
    const owner = waiters.begin("k", "fp", 60_000);
    owner.hold(new Uint8Array([7]), 5, undefined);
    owner.withhold();
    expect(await waiters.find("k")!.wait(20, never)).toBeUndefined();
    const waiting = waiters.find("k")!.wait(1_000, never);
    owner.settle({ kind: "released" });
    expect(await waiting).toEqual({ kind: "released" });
  });
});
