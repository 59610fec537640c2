import { describe, expect, it } from "vitest";
import { sleep, waitAtMost } from "../../src/server/bounded-wait.js";

/** An AbortSignal whose listeners can be counted. */
function countedSignal(): { controller: AbortController; listeners: () => number } {
  const controller = new AbortController();
  let count = 0;
  const add = controller.signal.addEventListener.bind(controller.signal);
  const remove = controller.signal.removeEventListener.bind(controller.signal);
  controller.signal.addEventListener = ((...args: Parameters<typeof add>) => {
    count++;
    add(...args);
  }) as typeof add;
  controller.signal.removeEventListener = ((...args: Parameters<typeof remove>) => {
    count--;
    remove(...args);
  }) as typeof remove;
  return { controller, listeners: () => count };
}

const never = new Promise<never>(() => {});

describe("waitAtMost()", () => {
  it("resolves with the promise's value when it settles in time, and removes its abort listener", async () => {
    const { controller, listeners } = countedSignal();
    expect(await waitAtMost(Promise.resolve(7), 1_000, controller.signal)).toBe(7);
    expect(listeners()).toBe(0);
  });

  it("resolves with undefined once the timeout passes, without rejecting", async () => {
    const { controller, listeners } = countedSignal();
    const started = performance.now();
    expect(await waitAtMost(never, 30, controller.signal)).toBeUndefined();
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);
    expect(listeners()).toBe(0);
  });

  it("resolves with undefined as soon as the signal aborts, long before the timeout", async () => {
    const { controller, listeners } = countedSignal();
    setTimeout(() => controller.abort(new Error("client left")), 10);
    const started = performance.now();
    expect(await waitAtMost(never, 10_000, controller.signal)).toBeUndefined();
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(listeners()).toBe(0);
  });

  it("resolves with undefined at once for a timeout of zero or less, or a signal aborted already, even if the value is ready", async () => {
    const aborted = AbortSignal.abort();
    expect(await waitAtMost(Promise.resolve(1), 0, new AbortController().signal)).toBeUndefined();
    expect(await waitAtMost(Promise.resolve(1), -5, new AbortController().signal)).toBeUndefined();
    expect(await waitAtMost(Promise.resolve(1), 1_000, aborted)).toBeUndefined();
  });

  it("rejects with the promise's error when it rejects in time, and removes its abort listener", async () => {
    const { controller, listeners } = countedSignal();
    const failure = new Error("store down");
    await expect(waitAtMost(Promise.reject(failure), 1_000, controller.signal)).rejects.toBe(failure);
    expect(listeners()).toBe(0);
  });

  it("leaves no timer behind that keeps the process alive once the promise settles", async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    await waitAtMost(Promise.resolve(1), 60_000, new AbortController().signal);
    expect(process.getActiveResourcesInfo().filter((r) => r === "Timeout").length).toBe(before);
  });
});

describe("sleep()", () => {
  it("waits the given time", async () => {
    const started = performance.now();
    await sleep(30, new AbortController().signal);
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);
  });

  it("ends early, without rejecting, when the signal aborts", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 10);
    const started = performance.now();
    await expect(sleep(10_000, controller.signal)).resolves.toBeUndefined();
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});
