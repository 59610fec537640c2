import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPaymentServiceClient } from "../../gen/demo/v1/payments_idempotency.js";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { FixtureService } from "../../gen/fixture/v1/fixture_pb.js";
import { IdempotencyService } from "../../gen/idempotency/v1/idempotency_service_pb.js";
import { createMemoryPendingRequestIds, lookupPendingOutcome, withPendingKey } from "../../src/client/index.js";
import { createIdempotencyService } from "../../src/index.js";
import { createHostileTransport } from "../../src/testing/hostile-transport.js";
import { scriptedRandom } from "../support/attempt-recorder.js";
import { expectConnectError } from "../support/connect-assertions.js";
import { type IdempotencyTestServer, startIdempotencyTestServer } from "../support/idempotency-test-server.js";

describe("lookupPendingOutcome", () => {
  let server: IdempotencyTestServer;

  beforeAll(async () => {
    server = await startIdempotencyTestServer({
      routes: (router, store) =>
        router.service(
          IdempotencyService,
          createIdempotencyService({ store, services: [PaymentService, FixtureService] }),
        ),
    });
  });

  afterAll(async () => {
    await server.close();
  });

  it("finds what became of a pending operation after its answer was lost, without the request", async () => {
    const pending = createMemoryPendingRequestIds();
    const transport = createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "2" });
    // The answer is lost after the server ran the call, and the client gives up.
    const lossy = createHostileTransport(transport, { dropRate: 1, random: scriptedRandom(0) });
    const client = createPaymentServiceClient(lossy, { pendingRequestIds: pending, maxAttempts: 1 });
    const cart = `cart-${crypto.randomUUID()}`;
    await expectConnectError(
      client.createPayment(
        { accountId: "acct_1", amountMinor: 700n, currency: "EUR" },
        { contextValues: withPendingKey(cart) },
      ),
    );
    expect(server.runs.map((r) => r.method)).toContain("createPayment");

    // "After the restart": only the pending store and the cart's key are left.
    const found = await lookupPendingOutcome(transport, pending, PaymentService.method.createPayment, cart);
    expect(found.requestId).toBe(server.runs.at(-1)?.requestId);
    expect(found.requestId !== undefined && found.outcome.state).toBe("completed");
    if (found.requestId !== undefined && found.outcome.state === "completed") {
      expect(found.outcome.response.payment?.amountMinor).toBe(700n);
    }
    expect(await lookupPendingOutcome(transport, pending, PaymentService.method.createPayment, "cart-other")).toEqual({
      requestId: undefined,
    });
  });
});
