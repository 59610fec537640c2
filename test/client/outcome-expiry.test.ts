import { Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPaymentServiceClient } from "../../gen/demo/v1/payments_idempotency.js";
import { type RetryEvent, readReplayInfo } from "../../src/client/index.js";
import { ErrorReason } from "../../src/errors/error-reason.js";
import { idempotencyContext } from "../../src/index.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { describeError, expectConnectError } from "../support/connect-assertions.js";
import { type IdempotencyTestServer, startIdempotencyTestServer } from "../support/idempotency-test-server.js";

// A short retentionMs: the record of a call that never completes lives
// max(retention, lease) = 1.5 s from its claim, and that is what the server
// announces on REQUEST_IN_PROGRESS.
const retentionMs = 1_500;

describe("generated clients and idempotency-expires", () => {
  let server: IdempotencyTestServer;
  const gates = new Map<string, () => void>();

  beforeAll(async () => {
    server = await startIdempotencyTestServer({
      store: createSqliteStore({ path: ":memory:", sweepIntervalMs: 0 }),
      interceptor: { retentionMs: retentionMs, leaseMs: 1_000, maxWaitMs: 100 },
      payments: {
        async createPayment(req, ctx) {
          const n = server.record("createPayment", req.requestId, ctx.values.get(idempotencyContext));
          if (req.accountId === "slow") {
            await new Promise<void>((resolve) => gates.set(req.requestId, resolve));
          }
          return { payment: { paymentId: `pay_${n}` } };
        },
      },
    });
  });

  afterAll(async () => {
    for (const open of gates.values()) {
      open();
    }
    await server.close();
  });

  it("stops retrying a pending call before the announced expiry and reports OUTCOME_UNKNOWN", async () => {
    const transport = createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "2" });
    const retries: RetryEvent[] = [];
    const client = createPaymentServiceClient(transport, { maxAttempts: 50, onRetry: (event) => retries.push(event) });
    const requestId = crypto.randomUUID();
    const request = { requestId, accountId: "slow", amountMinor: 1n, currency: "EUR" };
    // The first call holds the key and never finishes while the client retries.
    const holder = client.createPayment(request, { timeoutMs: 30_000 }).catch(() => undefined);
    while (!gates.has(requestId)) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const runs = server.runs.length;
    const started = Date.now();
    const error = await expectConnectError(client.createPayment(request));
    expect(describeError(error)).toMatchObject({ code: Code.Unknown, reason: ErrorReason.OUTCOME_UNKNOWN });
    expect(error.rawMessage).toContain(requestId);
    expect(error.rawMessage).toContain("stopped retrying");
    // It retried while the server still answered for the ID (RetryInfo says
    // 1 s, the expiry is 1.5 s after the claim), then stopped instead of
    // retrying into the time when the ID could run again.
    expect(retries.length).toBeGreaterThanOrEqual(1);
    expect(retries.length).toBeLessThan(49);
    expect(retries.every((r) => r.error.code === Code.Aborted)).toBe(true);
    const expiresAt = Date.parse(retries.at(-1)?.error.metadata.get("idempotency-expires") ?? "");
    expect(expiresAt).toBeGreaterThan(started);
    expect(Date.now() + 1_000).toBeGreaterThanOrEqual(expiresAt);
    expect(server.runs.length - runs).toBe(0);
    gates.get(requestId)?.();
    await holder;
  });

  it("exposes the expiry of an answer through readReplayInfo", async () => {
    const transport = createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "2" });
    const client = createPaymentServiceClient(transport);
    let header = new Headers();
    await client.createPayment(
      { requestId: crypto.randomUUID(), accountId: "fast", amountMinor: 1n, currency: "EUR" },
      { onHeader: (h) => (header = h) },
    );
    const info = readReplayInfo(header);
    expect(info.replayed).toBe(false);
    expect(info.expiresAt?.getTime()).toBeGreaterThan(Date.now());
    expect(info.expiresAt?.getTime()).toBeLessThanOrEqual(Date.now() + retentionMs);
  });
});
