import { describe, expect, it } from "vitest";
import { startLeaseKeeper } from "../../src/server/lease-keeper.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("startLeaseKeeper()", () => {
  it("renews at its interval while the claim holds", async () => {
    let renewals = 0;
    const keeper = startLeaseKeeper({
      intervalMs: 20,
      retryMs: 5,
      renew: async () => {
        renewals++;
        return true;
      },
      onError: () => {},
      onLost: () => {},
    });
    await sleep(200);
    keeper.stop();
    const seen = renewals;
    expect(seen).toBeGreaterThanOrEqual(2);
    await sleep(60);
    expect(renewals).toBe(seen);
  });

  it("after a failed renewal, tries again after retryMs rather than the interval", async () => {
    const times: number[] = [];
    const errors: unknown[] = [];
    const keeper = startLeaseKeeper({
      intervalMs: 400,
      retryMs: 10,
      renew: async () => {
        times.push(performance.now());
        if (times.length < 3) throw new Error("store unreachable");
        return true;
      },
      onError: (error) => errors.push(error),
      onLost: () => {},
    });
    await sleep(600);
    keeper.stop();
    expect(errors).toHaveLength(2);
    // The two retries came soon after their failures, the renewal after success only at the interval.
    expect(times[1]! - times[0]!).toBeLessThan(200);
    expect(times[2]! - times[1]!).toBeLessThan(200);
  });

  it("stops and reports once when the claim is gone", async () => {
    let lost = 0;
    let renewals = 0;
    startLeaseKeeper({
      intervalMs: 10,
      retryMs: 10,
      renew: async () => {
        renewals++;
        return false;
      },
      onError: () => {},
      onLost: () => lost++,
    });
    await sleep(100);
    expect(lost).toBe(1);
    expect(renewals).toBe(1);
  });
});
