import { Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { createFixtureServiceClient } from "../../gen/fixture/v1/fixture_idempotency.js";
import { createPaymentServiceClient } from "../../gen/demo/v1/payments_idempotency.js";
import { type IdempotentClientOptions, type RetryEvent, withRetryOptions } from "../../src/client/index.js";
import { ErrorReason } from "../../src/errors/error-reason.js";
import { type HostileNetworkOptions, createHostileTransport } from "../../src/testing/hostile-transport.js";
import { scriptedRandom } from "../support/attempt-recorder.js";
import { describeError, expectConnectError } from "../support/connect-assertions.js";
import { useRecordingTestServer } from "../support/recording-test-server.js";

const uuidV4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const recording = useRecordingTestServer();

/** A generated client over a network with the given faults, waiting no wall time between attempts. */
function clients(network: HostileNetworkOptions = {}, options: IdempotentClientOptions = {}) {
  const retries: RetryEvent[] = [];
  const transport = createHostileTransport(
    createConnectTransport({ baseUrl: recording.server.baseUrl, httpVersion: "2" }),
    network,
  );
  const clientOptions: IdempotentClientOptions = {
    sleep: async () => undefined,
    onRetry: (event) => retries.push(event),
    ...options,
  };
  return {
    payments: createPaymentServiceClient(transport, clientOptions),
    fixture: createFixtureServiceClient(transport, clientOptions),
    retries,
  };
}

describe("generated client request IDs", () => {
  it("fills an empty request ID with a new UUIDv4 per call, without touching the caller's request", async () => {
    const { payments } = clients();
    const request = { requestId: "", accountId: "acct_1", amountMinor: 500n, currency: "EUR" };
    await payments.createPayment(request);
    await payments.createPayment(request);
    const ids = recording.attempts.map((a) => a.requestId);
    expect(ids).toHaveLength(2);
    expect(ids[0]).toMatch(uuidV4);
    expect(ids[1]).toMatch(uuidV4);
    expect(ids[0]).not.toBe(ids[1]);
    expect(request.requestId).toBe("");
  });

  it("sends a caller's own request ID unchanged", async () => {
    const { payments } = clients();
    const own = "3F0C8D4E-5B7A-4C1E-9D2F-6A8B0C1D2E3F";
    await payments.createPayment({ requestId: own, accountId: "acct_1" });
    expect(recording.attempts).toEqual([{ method: "createPayment", requestId: own, timeoutMs: null }]);
  });

  it("retries a call whose response was lost with the first attempt's ID, and the handler runs once", async () => {
    const { payments, retries } = clients({ dropRate: 0.5, random: scriptedRandom(0.1) });
    const response = await payments.createPayment({ accountId: "acct_2", amountMinor: 100n, currency: "EUR" });
    expect(recording.attempts).toHaveLength(2);
    const [first, second] = recording.attempts;
    expect(first?.requestId).toMatch(uuidV4);
    expect(second?.requestId).toBe(first?.requestId);
    expect(recording.server.runs.map((r) => r.requestId)).toEqual([first?.requestId]);
    expect(response.payment?.paymentId).toBe("pay_1");
    expect(retries.map((r) => [r.attempt, r.error.code, r.requestId])).toEqual([
      [1, Code.Unavailable, first?.requestId],
    ]);
  });

  it("retries a natural-key method without filling any request ID, and the handler runs once", async () => {
    const { fixture, retries } = clients({ dropRate: 0.5, random: scriptedRandom(0.1) });
    const request = { orderId: `ord_${crypto.randomUUID()}`, shop: { id: "s1" }, quantity: 1 };
    const response = await fixture.placeOrder(request);
    expect(recording.attempts).toHaveLength(2);
    expect(recording.server.runs.map((r) => r.method)).toEqual(["placeOrder"]);
    expect(response.executions).toBe(1);
    expect(retries.map((r) => [r.attempt, r.error.code, r.requestId])).toEqual([[1, Code.Unavailable, undefined]]);
  });

  it("retries a connection reset after the server ran the call with the same ID", async () => {
    // 0.1 picks a reset, 0.9 places it after the server ran the call.
    const { payments } = clients({ resetRate: 0.5, random: scriptedRandom(0.1, 0.9) });
    await payments.createPayment({ accountId: "acct_3" });
    const ids = recording.attempts.map((a) => a.requestId);
    expect(ids).toHaveLength(2);
    expect(new Set(ids).size).toBe(1);
    expect(recording.server.runs).toHaveLength(1);
  });

  it("never fills a REQUIRED request ID, and does not retry a call that lacks one", async () => {
    const { payments } = clients({ dropRate: 0.5, random: scriptedRandom(0.9) });
    const error = await expectConnectError(payments.refundPayment({ paymentId: "pay_1", amountMinor: 1n }));
    expect(describeError(error)).toMatchObject({ code: Code.InvalidArgument, reason: ErrorReason.REQUEST_ID_REQUIRED });
    expect(recording.attempts).toEqual([{ method: "refundPayment", requestId: "", timeoutMs: null }]);
  });

  it("retries a REQUIRED request ID the caller passed, with that ID", async () => {
    const { payments } = clients({ dropRate: 0.5, random: scriptedRandom(0.1) });
    const own = "7d444840-9dc0-11d1-b245-5ffdce74fad2";
    await payments.refundPayment({ requestId: own, paymentId: "pay_1", amountMinor: 1n });
    expect(recording.attempts.map((a) => a.requestId)).toEqual([own, own]);
    expect(recording.server.runs).toHaveLength(1);
  });

  it("leaves streaming calls alone", async () => {
    const { payments } = clients();
    for await (const _ of payments.watchPayments({ accountId: "acct_4" })) {
      // drain
    }
    expect(recording.server.runs.map((r) => [r.method, r.requestId])).toEqual([["watchPayments", ""]]);
  });
});

describe("generated client retries", () => {
  it("retries a NO_SIDE_EFFECTS method without a request ID", async () => {
    const { payments } = clients({ dropRate: 0.5, random: scriptedRandom(0.1) });
    const response = await payments.getPayment({ paymentId: "pay_9" });
    expect(response.payment?.paymentId).toBe("pay_9");
    expect(recording.attempts.map((a) => a.method)).toEqual(["getPayment", "getPayment"]);
  });

  it("never retries a method without a request ID that is not marked safe", async () => {
    const { fixture } = clients({ dropRate: 0.5, random: scriptedRandom(0.1) });
    const error = await expectConnectError(fixture.plain({ text: "once" }));
    expect(error.code).toBe(Code.Unavailable);
    expect(recording.attempts.map((a) => a.method)).toEqual(["plain"]);
    expect(recording.server.runs.map((r) => r.method)).toEqual(["plain"]);
  });

  it("fills and retries the request ID of another field name (Opaque's key)", async () => {
    const { fixture } = clients({ dropRate: 0.5, random: scriptedRandom(0.1) });
    await fixture.opaque({ text: "hello" });
    const keys = recording.attempts.map((a) => a.requestId);
    expect(keys).toHaveLength(2);
    expect(keys[0]).toMatch(uuidV4);
    expect(keys[1]).toBe(keys[0]);
  });

  it("takes retry options per call from the call's context values", async () => {
    const { payments } = clients({ dropRate: 0.5, random: scriptedRandom(0.1) });
    const error = await expectConnectError(
      payments.createPayment({ accountId: "acct_5" }, { contextValues: withRetryOptions({ maxAttempts: 1 }) }),
    );
    expect(error.code).toBe(Code.Unavailable);
    expect(recording.attempts).toHaveLength(1);
  });

  it("spends one timeoutMs on all attempts: each attempt is sent with what remains", async () => {
    let now = 0;
    const { payments } = clients(
      { dropRate: 0.5, random: scriptedRandom(0.1, 0.1) },
      {
        clock: { now: () => now },
        sleep: async (ms) => {
          now += ms;
        },
        random: () => 0.5,
      },
    );
    await payments.createPayment({ accountId: "acct_6" }, { timeoutMs: 1_000 });
    // Waits of 100 and 200 ms on the client's clock come off the budget.
    expect(recording.attempts.map((a) => a.timeoutMs)).toEqual(["1000", "900", "700"]);
  });
});
