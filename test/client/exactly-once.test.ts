import { createConnectTransport } from "@connectrpc/connect-node";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { expect, it } from "vitest";
import { createPaymentServiceClient } from "../../gen/demo/v1/payments_idempotency.js";
import { type HostileFault, createHostileTransport } from "../../src/testing/hostile-transport.js";
import { createSeededRandom } from "../../src/testing/seeded-random.js";
import { startHttp2Server } from "../support/http2-server.js";
import { useRecordingTestServer } from "../support/recording-test-server.js";

const payments = 1_000;
const concurrency = 8;

const recording = useRecordingTestServer();

it("runs each of 1,000 payments exactly once through the generated client over a hostile network", async () => {
  const faults = new Map<HostileFault, number>();
  let retries = 0;
  const transport = createHostileTransport(
    createConnectTransport({ baseUrl: recording.server.baseUrl, httpVersion: "2" }),
    {
      dropRate: 0.1,
      resetRate: 0.1,
      random: createSeededRandom(1),
      onFault: (fault) => faults.set(fault, (faults.get(fault) ?? 0) + 1),
    },
  );
  const client = createPaymentServiceClient(transport, {
    // Enough attempts that a call fails every one of them with odds of 1e-10.
    maxAttempts: 15,
    initialBackoffMs: 1,
    maxBackoffMs: 5,
    random: createSeededRandom(2),
    onRetry: () => retries++,
  });

  const paymentIds: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < payments) {
        const n = next++;
        const response = await client.createPayment({
          accountId: `acct_${n % 17}`,
          amountMinor: BigInt(n + 1),
          currency: "EUR",
        });
        paymentIds.push(response.payment?.paymentId ?? "");
      }
    }),
  );

  // Every call completed with a payment, and the handler ran once per call.
  expect(paymentIds).toHaveLength(payments);
  expect(new Set(paymentIds).size).toBe(payments);
  const executed = recording.server.runs.filter((r) => r.method === "createPayment").map((r) => r.requestId);
  expect(executed).toHaveLength(payments);
  expect(new Set(executed).size).toBe(payments);
  // The network really failed calls after the server ran them, and the client retried them.
  expect(faults.get("drop") ?? 0).toBeGreaterThan(50);
  expect(faults.get("reset-after") ?? 0).toBeGreaterThan(20);
  expect(retries).toBeGreaterThan(100);
  expect(recording.attempts.length).toBeGreaterThan(payments + 100);
  expect(new Set(recording.attempts.map((a) => a.requestId)).size).toBe(payments);
});

it("duplicates payments over the same network when the server does not deduplicate (control)", async () => {
  let executions = 0;
  const plain = await startHttp2Server({
    routes(router) {
      router.service(PaymentService, {
        createPayment() {
          executions++;
          return { payment: { paymentId: `pay_${executions}` } };
        },
      });
    },
  });
  try {
    const transport = createHostileTransport(createConnectTransport({ baseUrl: plain.baseUrl, httpVersion: "2" }), {
      dropRate: 0.1,
      resetRate: 0.1,
      random: createSeededRandom(1),
    });
    const client = createPaymentServiceClient(transport, { maxAttempts: 15, initialBackoffMs: 1, maxBackoffMs: 5 });
    for (let n = 0; n < 200; n++) {
      await client.createPayment({ accountId: "acct_1", amountMinor: 1n, currency: "EUR" });
    }
    expect(executions).toBeGreaterThan(200);
  } finally {
    await plain.close();
  }
});
