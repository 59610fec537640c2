import { randomUUID } from "node:crypto";
import { Code, ConnectError, type UnaryResponse } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ErrorReason } from "../../src/errors/error-reason.js";
import type { UnaryNext } from "../../src/server/dedupe-call.js";
import { deduplicate } from "../../src/server/deduplicate.js";
import { replayedHeader } from "../../src/server/protocol-headers.js";
import { describeError, expectConnectError } from "../support/connect-assertions.js";
import {
  openSecondProcess,
  paymentIdOf,
  paymentResponse,
  type StepHarness,
  useStepHarness,
} from "../support/dedupe-call-fixture.js";

const { open, openFaulty } = useStepHarness();

/** A handler that counts its runs and answers `pay_<run>`, after `gate` when given. */
function countingHandler(gate?: Promise<void>): UnaryNext & { runs: number } {
  const handler = Object.assign(
    async (): Promise<UnaryResponse> => {
      handler.runs++;
      const run = handler.runs;
      await gate;
      return paymentResponse(`pay_${run}`);
    },
    { runs: 0 },
  );
  return handler;
}

function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/**
 * A first call of a fresh request ID, its handler (`countingHandler`)
 * running until `release.open()`.
 */
async function runningFirst(h: StepHarness) {
  const requestId = randomUUID();
  const release = gate();
  const handler = countingHandler(release.promise);
  const first = deduplicate(await h.call({ requestId }), handler);
  await expect.poll(() => handler.runs).toBe(1);
  return { requestId, release, handler, first };
}

describe("deduplicate()", () => {
  it("runs the handler for a fresh key, and replays its stored outcome to a later duplicate without running it", async () => {
    const h = open();
    const requestId = randomUUID();
    const handler = countingHandler();
    const first = await deduplicate(await h.call({ requestId }), handler);
    const again = await deduplicate(await h.call({ requestId }), handler);
    expect(handler.runs).toBe(1);
    expect([paymentIdOf(first), first.header.get(replayedHeader)]).toEqual(["pay_1", null]);
    expect([paymentIdOf(again), again.header.get(replayedHeader)]).toEqual(["pay_1", "true"]);
  });

  it("makes a duplicate in this process wait for the running execution and answers it with that outcome", async () => {
    const h = open();
    const { requestId, release, handler, first } = await runningFirst(h);
    const duplicate = deduplicate(await h.call({ requestId }), handler);
    setTimeout(release.open, 20);
    const [a, b] = await Promise.all([first, duplicate]);
    expect(handler.runs).toBe(1);
    expect([paymentIdOf(a), paymentIdOf(b), b.header.get(replayedHeader)]).toEqual(["pay_1", "pay_1", "true"]);
    expect(h.events.filter((e) => e.type === "waited")).toMatchObject([{ waitResult: "outcome" }]);
  });

  it("makes a duplicate in another process poll the store for the running execution's outcome", async () => {
    const h = open();
    const other = openSecondProcess(h);
    const { requestId, release, handler, first } = await runningFirst(h);
    const duplicate = deduplicate(await other.call({ requestId }), handler);
    setTimeout(release.open, 30);
    expect(paymentIdOf(await duplicate)).toBe("pay_1");
    await first;
    expect(handler.runs).toBe(1);
  });

  it("lets a waiting duplicate claim the key and run once the execution it waited for frees it", async () => {
    const h = open();
    const requestId = randomUUID();
    const release = gate();
    let runs = 0;
    const handler: UnaryNext = async () => {
      runs++;
      if (runs === 1) {
        await release.promise;
        throw new ConnectError("not you", Code.Unauthenticated);
      }
      return paymentResponse(`pay_${runs}`);
    };
    const first = deduplicate(await h.call({ requestId }), handler);
    await expect.poll(() => runs).toBe(1);
    const duplicate = deduplicate(await h.call({ requestId }), handler);
    setTimeout(release.open, 20);
    expect((await expectConnectError(first)).code).toBe(Code.Unauthenticated);
    expect(paymentIdOf(await duplicate)).toBe("pay_2");
    expect(h.events.map((e) => e.type)).toEqual(["claimed", "released", "waited", "claimed", "completed"]);
  });

  it("refuses another payload under the same request ID with FAILED_PRECONDITION REQUEST_ID_REUSED, running or completed", async () => {
    const h = open();
    const { requestId, release, handler, first } = await runningFirst(h);
    const running = await expectConnectError(deduplicate(await h.call({ requestId, amountMinor: 999n }), handler));
    release.open();
    await first;
    const completed = await expectConnectError(deduplicate(await h.call({ requestId, amountMinor: 999n }), handler));
    for (const error of [running, completed]) {
      expect(describeError(error)).toEqual({
        code: Code.FailedPrecondition,
        reason: ErrorReason.REQUEST_ID_REUSED,
        message:
          "the request ID in field request_id was already used for a request with different content; use a new request ID for a new request",
      });
    }
    expect(handler.runs).toBe(1);
  });

  it("refuses a duplicate of a record past its replay window with FAILED_PRECONDITION REQUEST_ID_EXPIRED, and does not run it", async () => {
    const h = open({ retentionMs: 60_000, tombstoneRetentionMs: 60_000 });
    const requestId = randomUUID();
    const handler = countingHandler();
    await deduplicate(await h.call({ requestId }), handler);
    h.clock.advance(60_000);
    const error = await expectConnectError(deduplicate(await h.call({ requestId }), handler));
    expect(describeError(error)).toMatchObject({
      code: Code.FailedPrecondition,
      reason: ErrorReason.REQUEST_ID_EXPIRED,
    });
    expect(handler.runs).toBe(1);
  });

  it("replays a completed outcome from the replay cache without asking the store", async () => {
    const h = openFaulty({ replayCache: { maxBytes: 1_000_000, ttlMs: 60_000 } });
    const requestId = randomUUID();
    const handler = countingHandler();
    await deduplicate(await h.call({ requestId }), handler);
    h.faults.failing.add("claim");
    h.faults.failing.add("get");
    const again = await deduplicate(await h.call({ requestId }), handler);
    expect([paymentIdOf(again), again.header.get(replayedHeader)]).toEqual(["pay_1", "true"]);
    expect(h.events.at(-1)).toMatchObject({ type: "replayed", fromCache: true });
    // Another payload is refused from the cache as well.
    const other = await expectConnectError(deduplicate(await h.call({ requestId, amountMinor: 999n }), handler));
    expect(describeError(other).reason).toBe(ErrorReason.REQUEST_ID_REUSED);
    expect(handler.runs).toBe(1);
  });
});
