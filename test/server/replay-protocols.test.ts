import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { FixtureService } from "../../gen/fixture/v1/fixture_pb.js";
import { idempotencyContext } from "../../src/index.js";
import { captureMetadata, expectConnectError } from "../support/connect-assertions.js";
import { type IdempotencyTestServer, startIdempotencyTestServer } from "../support/idempotency-test-server.js";
import { createTestTransport, transportVariants } from "../support/test-transports.js";

// The interceptor answers replays without calling the handler, and the
// header and trailer it returns replace the ones the protocol prepared: each
// protocol, codec and compression must still get a valid response.
describe("replaying a stored outcome on every protocol", () => {
  let server: IdempotencyTestServer;

  beforeAll(async () => {
    server = await startIdempotencyTestServer({
      // Compress every response body, so that replays through gzip really
      // carry compressed envelopes.
      adapter: { compressMinBytes: 1 },
      payments: {
        createPayment(req, ctx) {
          const n = server.record("createPayment", req.requestId, ctx.values.get(idempotencyContext));
          ctx.responseHeader.set("x-payment-region", "eu-west");
          ctx.responseTrailer.set("x-ledger-entry", `entry-${n}`);
          if (req.accountId === "declined") {
            throw new ConnectError(`card declined (${n})`, Code.FailedPrecondition, { "x-decline-code": "51" }, [
              { desc: ErrorInfoSchema, value: { reason: "CARD_DECLINED", domain: "bank.example" } },
            ]);
          }
          return {
            payment: {
              paymentId: `pay_${n}`,
              accountId: req.accountId,
              amountMinor: req.amountMinor,
              currency: req.currency,
              metadata: req.metadata,
            },
          };
        },
      },
    });
  });

  afterAll(async () => {
    await server.close();
  });

  describe.each(transportVariants)("over $name", (variant) => {
    const request = (requestId: string, accountId = "acct_1") => ({
      requestId,
      accountId,
      amountMinor: 1234n,
      currency: "EUR",
      metadata: { order: "o-1", note: "x".repeat(200) },
    });

    it("replays a response with the handler's headers and trailers", async () => {
      const client = createClient(PaymentService, createTestTransport(server.baseUrl, variant));
      const key = crypto.randomUUID();
      const runs = server.runs.length;
      const first = captureMetadata();
      const original = await client.createPayment(request(key), first.options);
      const again = captureMetadata();
      const replayed = await client.createPayment(request(key), again.options);
      expect(replayed).toEqual(original);
      expect(server.runs.length - runs).toBe(1);
      expect(again.seen.header.get("idempotency-replayed")).toBe("true");
      expect(first.seen.header.get("idempotency-replayed")).toBeNull();
      expect(again.seen.header.get("x-payment-region")).toBe("eu-west");
      expect(again.seen.trailer.get("x-ledger-entry")).toBe(first.seen.trailer.get("x-ledger-entry"));
      if (variant.protocol !== "connect") {
        // The negotiated compression, exactly as on the first response.
        expect(again.seen.header.get("grpc-encoding")).toBe(first.seen.header.get("grpc-encoding"));
        expect(again.seen.header.get("grpc-encoding")).toBe(variant.gzip ? "gzip" : null);
      } else {
        expect(again.seen.header.get("content-encoding")).toBe(variant.gzip ? "gzip" : null);
      }
    });

    it("replays an error with its code, message, details and metadata", async () => {
      const client = createClient(PaymentService, createTestTransport(server.baseUrl, variant));
      const key = crypto.randomUUID();
      const runs = server.runs.length;
      const original = await expectConnectError(client.createPayment(request(key, "declined")));
      const replayed = await expectConnectError(client.createPayment(request(key, "declined")));
      expect(server.runs.length - runs).toBe(1);
      expect(replayed.code).toBe(Code.FailedPrecondition);
      expect(replayed.rawMessage).toBe(original.rawMessage);
      expect(replayed.findDetails(ErrorInfoSchema)).toEqual(original.findDetails(ErrorInfoSchema));
      expect(replayed.findDetails(ErrorInfoSchema)[0]?.reason).toBe("CARD_DECLINED");
      expect(replayed.metadata.get("x-decline-code")).toBe("51");
      expect(replayed.metadata.get("idempotency-replayed")).toBe("true");
    });
  });

  it("replays through another protocol than the first call's", async () => {
    const key = crypto.randomUUID();
    const runs = server.runs.length;
    const variants = [...transportVariants].reverse();
    const responses = [];
    for (const variant of variants) {
      const client = createClient(PaymentService, createTestTransport(server.baseUrl, variant));
      responses.push(await client.createPayment({ requestId: key, accountId: "acct_2", amountMinor: 7n }));
    }
    expect(new Set(responses.map((r) => r.payment?.paymentId)).size).toBe(1);
    expect(server.runs.length - runs).toBe(1);
  });

  it("replays large compressed responses", async () => {
    const runs = server.runs.length;
    for (const variant of transportVariants.filter((v) => v.gzip)) {
      const fixture = createClient(FixtureService, createTestTransport(server.baseUrl, variant));
      const key = `large-${variant.name}`;
      const first = await fixture.opaque({ key, text: "t", responseSize: 200_000 });
      const replayed = await fixture.opaque({ key, text: "t", responseSize: 200_000 });
      // Deep equality of 200 kB arrays is slow; compare the bytes directly.
      expect(Buffer.from(replayed.filler).equals(Buffer.from(first.filler))).toBe(true);
      expect(replayed.filler.byteLength).toBe(200_000);
      expect(replayed.executions).toBe(first.executions);
    }
    expect(server.runs.length - runs).toBe(transportVariants.filter((v) => v.gzip).length);
  });
});

describe("acceptCompression", () => {
  it("names the compression the server negotiates, in the server's order", async () => {
    // The server prefers br; a client accepting "gzip, br" gets gzip on gRPC,
    // because gRPC picks the client's first choice the server supports.
    const server = await startIdempotencyTestServer({
      adapter: { acceptCompression: [compressionBrotli], compressMinBytes: 1 },
      interceptor: { acceptCompression: [compressionBrotli] },
    });
    try {
      const client = createClient(
        PaymentService,
        createGrpcTransport({
          baseUrl: server.baseUrl,
          acceptCompression: [compressionGzip, compressionBrotli],
        }),
      );
      const key = crypto.randomUUID();
      const first = captureMetadata();
      const original = await client.createPayment({ requestId: key, accountId: "a" }, first.options);
      const again = captureMetadata();
      expect(await client.createPayment({ requestId: key, accountId: "a" }, again.options)).toEqual(original);
      expect(first.seen.header.get("grpc-encoding")).toBe("br");
      expect(again.seen.header.get("grpc-encoding")).toBe("br");
      expect(server.runs).toHaveLength(1);
    } finally {
      await server.close();
    }
  });
});
