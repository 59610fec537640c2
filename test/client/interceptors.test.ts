import { Code, type Interceptor, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { createPaymentServiceClient } from "../../gen/demo/v1/payments_idempotency.js";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { FixtureService } from "../../gen/fixture/v1/fixture_pb.js";
import { createRequestIdInterceptor, createRetryInterceptor, withRetryOptions } from "../../src/client/index.js";
import { type HostileNetworkOptions, createHostileInterceptor } from "../../src/testing/hostile-transport.js";
import { scriptedRandom } from "../support/attempt-recorder.js";
import { expectConnectError } from "../support/connect-assertions.js";
import { useRecordingTestServer } from "../support/recording-test-server.js";

const uuidV4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const noWait = { sleep: async () => undefined };

const recording = useRecordingTestServer();

/** Plain Connect clients (no codegen) whose transport runs `interceptors`, then the hostile network. */
function clients(interceptors: Interceptor[], network: HostileNetworkOptions = {}) {
  const transport = createGrpcTransport({
    baseUrl: recording.server.baseUrl,
    interceptors: [...interceptors, createHostileInterceptor(network)],
  });
  return { payments: createClient(PaymentService, transport), fixture: createClient(FixtureService, transport) };
}

describe("createRequestIdInterceptor and createRetryInterceptor", () => {
  const standard = () => [createRequestIdInterceptor(), createRetryInterceptor(noWait)];

  it("fill an empty request ID once per call and retry with it", async () => {
    const { payments } = clients(standard(), { dropRate: 0.5, random: scriptedRandom(0.1) });
    await payments.createPayment({ accountId: "acct_1" });
    await payments.createPayment({ accountId: "acct_1" });
    const [a, b, c] = recording.attempts.map((x) => x.requestId);
    expect(recording.attempts).toHaveLength(3);
    expect(a).toMatch(uuidV4);
    expect(b).toBe(a);
    expect(c).toMatch(uuidV4);
    expect(c).not.toBe(a);
    expect(recording.server.runs).toHaveLength(2);
  });

  it("send a caller's own request ID unchanged", async () => {
    const { payments } = clients(standard());
    const own = "0b7e6a3c-1f2d-4e5f-8a9b-0c1d2e3f4a5b";
    await payments.createPayment({ requestId: own });
    expect(recording.attempts.map((a) => a.requestId)).toEqual([own]);
  });

  it("leave a REQUIRED request ID to the caller", async () => {
    const { payments } = clients(standard());
    const error = await expectConnectError(payments.refundPayment({ paymentId: "pay_1" }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(recording.attempts.map((a) => a.requestId)).toEqual([""]);
  });

  it("retry a NO_SIDE_EFFECTS method and never a plain one", async () => {
    const { payments, fixture } = clients(standard(), { dropRate: 0.5, random: scriptedRandom(0.1, 0.9, 0.1) });
    await payments.getPayment({ paymentId: "pay_2" });
    const error = await expectConnectError(fixture.plain({ text: "once" }));
    expect(error.code).toBe(Code.Unavailable);
    expect(recording.attempts.map((a) => a.method)).toEqual(["getPayment", "getPayment", "plain"]);
  });

  it("take per-call retry options from the context values", async () => {
    const { payments } = clients(standard(), { dropRate: 0.5, random: scriptedRandom(0.1) });
    await expectConnectError(payments.createPayment({}, { contextValues: withRetryOptions({ maxAttempts: 1 }) }));
    expect(recording.attempts).toHaveLength(1);
  });

  it("retry nothing auto-filled when placed in the wrong order, rather than retry with new IDs", async () => {
    const { payments } = clients([createRetryInterceptor(noWait), createRequestIdInterceptor()], {
      dropRate: 0.5,
      random: scriptedRandom(0.1),
    });
    const error = await expectConnectError(payments.createPayment({ accountId: "acct_2" }));
    expect(error.code).toBe(Code.Unavailable);
    expect(recording.attempts).toHaveLength(1);
  });

  it("stop waiting when the call's timeout, which Connect applies to all attempts, runs out", async () => {
    // The wait for the retry only ends when the call's signal aborts.
    const untilAborted = (_ms: number, signal: AbortSignal | undefined) =>
      new Promise<void>((_resolve, reject) =>
        signal?.addEventListener("abort", () => reject(signal.reason), { once: true }),
      );
    const { payments } = clients([createRequestIdInterceptor(), createRetryInterceptor({ sleep: untilAborted })], {
      dropRate: 1,
    });
    const error = await expectConnectError(payments.createPayment({}, { timeoutMs: 200 }));
    expect(error.code).toBe(Code.DeadlineExceeded);
    expect(recording.attempts).toHaveLength(1);
  });

  it("stop waiting when the caller aborts", async () => {
    const controller = new AbortController();
    const abortThenWait = (_ms: number, signal: AbortSignal | undefined) =>
      new Promise<void>((_resolve, reject) => {
        signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
        controller.abort();
      });
    const { payments } = clients([createRequestIdInterceptor(), createRetryInterceptor({ sleep: abortThenWait })], {
      dropRate: 1,
    });
    const error = await expectConnectError(payments.createPayment({}, { signal: controller.signal }));
    expect(error.code).toBe(Code.Canceled);
    expect(recording.attempts).toHaveLength(1);
  });

  it("do not multiply attempts under a generated client that already retries", async () => {
    const transport = createConnectTransport({
      baseUrl: recording.server.baseUrl,
      httpVersion: "2",
      interceptors: [createRetryInterceptor({ ...noWait, maxAttempts: 3 }), createHostileInterceptor({ dropRate: 1 })],
    });
    const client = createPaymentServiceClient(transport, { ...noWait, maxAttempts: 3 });
    await expectConnectError(client.createPayment({ accountId: "acct_3" }));
    expect(recording.attempts).toHaveLength(3);
    expect(new Set(recording.attempts.map((a) => a.requestId)).size).toBe(1);
  });
});
