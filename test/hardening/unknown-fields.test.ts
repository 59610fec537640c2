import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { CreatePaymentRequestSchema, PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { fingerprintRequest } from "../../src/protocol/index.js";
import { type IdempotencyTestServer, startIdempotencyTestServer } from "../support/idempotency-test-server.js";

let server: IdempotencyTestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** A request as a client with a newer schema sends it: with a field (no. 105) this server does not know. */
function fromNewerClient(requestId: string) {
  const request = create(CreatePaymentRequestSchema, {
    requestId,
    accountId: "acct-1",
    amountMinor: 100n,
    currency: "EUR",
  });
  request.$unknown = [{ no: 105, wireType: 0, data: Uint8Array.of(1) }];
  return request;
}

describe("the fingerprint ignores unknown fields", () => {
  it("gives a request with unknown fields the fingerprint of the same request without them", () => {
    const requestId = crypto.randomUUID();
    const field = CreatePaymentRequestSchema.field.requestId;
    const plain = create(CreatePaymentRequestSchema, {
      requestId,
      accountId: "acct-1",
      amountMinor: 100n,
      currency: "EUR",
    });
    expect(fingerprintRequest(CreatePaymentRequestSchema, fromNewerClient(requestId), field)).toBe(
      fingerprintRequest(CreatePaymentRequestSchema, plain, field),
    );
    // A known field still counts.
    const changed = create(CreatePaymentRequestSchema, {
      requestId,
      accountId: "acct-1",
      amountMinor: 101n,
      currency: "EUR",
    });
    expect(fingerprintRequest(CreatePaymentRequestSchema, changed, field)).not.toBe(
      fingerprintRequest(CreatePaymentRequestSchema, plain, field),
    );
  });

  it("a retry over Connect JSON, which cannot carry unknown fields, replays the binary call's outcome", async () => {
    server = await startIdempotencyTestServer();
    const grpc = createClient(PaymentService, createGrpcTransport({ baseUrl: server.baseUrl }));
    const json = createClient(
      PaymentService,
      createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "2", useBinaryFormat: false }),
    );
    const request = fromNewerClient(crypto.randomUUID());
    const first = await grpc.createPayment(request);
    expect(await grpc.createPayment(request)).toEqual(first);
    expect(await json.createPayment(request)).toEqual(first);
    expect(server.runs).toHaveLength(1);
  });
});
