import { describe, expect, it } from "vitest";
import { createLazyAbortController } from "../../src/server/lazy-abort-controller.js";

describe("createLazyAbortController", () => {
  it("aborts a signal read before the abort, with the reason", () => {
    const controller = createLazyAbortController();
    const signal = controller.signal;
    const seen: unknown[] = [];
    signal.addEventListener("abort", () => seen.push(signal.reason));
    expect(signal.aborted).toBe(false);
    controller.abort("lost");
    expect(seen).toEqual(["lost"]);
    expect(controller.signal).toBe(signal);
  });

  it("hands out an aborted signal when the abort came before anyone read it", () => {
    const controller = createLazyAbortController();
    controller.abort("lost");
    expect(controller.signal.aborted).toBe(true);
    expect(controller.signal.reason).toBe("lost");
  });

  it("hands out one signal, however often it is read", () => {
    const controller = createLazyAbortController();
    expect(controller.signal).toBe(controller.signal);
  });
});
