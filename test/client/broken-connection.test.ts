import * as http2 from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { createPaymentServiceClient } from "../../gen/demo/v1/payments_idempotency.js";
import { type RetryEvent, createRequestIdInterceptor, createRetryInterceptor } from "../../src/client/index.js";
import { isRetryableError } from "../../src/client/retryable-error.js";
import { createHostileTransport } from "../../src/testing/hostile-transport.js";
import { expectConnectError } from "../support/connect-assertions.js";
import { type TestHttp2Server, startHttp2Server } from "../support/http2-server.js";

// The errors connect-node really reports when a connection breaks under a
// call, produced by a server that reads the request and then breaks the
// connection in one way or another.
type Breakage = "tcp-reset" | "session-destroy" | "goaway-error";

let breakage: Breakage = "tcp-reset";
// When set, only every other request breaks; the others are served.
let serveEveryOther = false;
let requests = 0;
let raw: http2.Http2Server;
let rawUrl: string;
const rawSessions = new Set<http2.ServerHttp2Session>();
let connect: TestHttp2Server;

beforeAll(async () => {
  const serve = connectNodeAdapter({
    routes(router) {
      router.service(PaymentService, { createPayment: (req) => ({ payment: { paymentId: req.requestId } }) });
    },
  });
  raw = http2.createServer((req, res) => {
    if (serveEveryOther && requests++ % 2 === 1) {
      serve(req, res);
      return;
    }
    req.resume();
    req.on("end", () => {
      const session = req.stream.session;
      if (session === undefined) {
        return;
      }
      switch (breakage) {
        case "tcp-reset":
          (session.socket as Socket).resetAndDestroy();
          break;
        case "session-destroy":
          session.destroy();
          break;
        case "goaway-error":
          session.goaway(http2.constants.NGHTTP2_INTERNAL_ERROR);
          break;
      }
    });
  });
  raw.on("session", (session) => {
    rawSessions.add(session);
    session.once("close", () => rawSessions.delete(session));
  });
  await new Promise<void>((resolve) => raw.listen(0, "127.0.0.1", resolve));
  rawUrl = `http://127.0.0.1:${(raw.address() as AddressInfo).port}`;
  connect = await startHttp2Server({
    routes(router) {
      router.service(PaymentService, {
        createPayment(req) {
          throw new ConnectError(req.accountId, Number(req.currency) as Code);
        },
      });
    },
  });
});

afterAll(async () => {
  for (const session of rawSessions) {
    session.destroy();
  }
  await new Promise<void>((resolve) => raw.close(() => resolve()));
  await connect.close();
});

async function breakCall(kind: Breakage): Promise<ConnectError> {
  breakage = kind;
  // A fresh transport per call: the broken session cannot be reused.
  const client = createClient(PaymentService, createConnectTransport({ baseUrl: rawUrl, httpVersion: "2" }));
  return await expectConnectError(client.createPayment({}, { timeoutMs: 10_000 }));
}

describe("isRetryableError on real connection failures", () => {
  it.each([
    ["tcp-reset", Code.Aborted],
    ["session-destroy", Code.Canceled],
    ["goaway-error", Code.Internal],
  ] as const)("retries a call whose connection broke by %s (connect-node reports code %i)", async (kind, code) => {
    const error = await breakCall(kind);
    expect(error.code).toBe(code);
    expect(isRetryableError(error)).toBe(true);
  });

  it("injects the same reset as a real TCP reset", async () => {
    const real = await breakCall("tcp-reset");
    const transport = createHostileTransport(createConnectTransport({ baseUrl: connect.baseUrl, httpVersion: "2" }), {
      resetRate: 1,
      random: () => 0,
    });
    const injected = await expectConnectError(createClient(PaymentService, transport).createPayment({}));
    expect(injected.code).toBe(real.code);
    const causeCode = (e: ConnectError) => (e.cause as { code?: string } | undefined)?.code;
    expect(causeCode(injected)).toBe(causeCode(real));
    expect(isRetryableError(injected)).toBe(true);
  });

  it.each([
    [Code.Internal, false],
    [Code.Unknown, false],
    [Code.Aborted, false],
    [Code.InvalidArgument, false],
    [Code.Unavailable, true],
    [Code.ResourceExhausted, true],
  ])("treats code %i sent by the server as retryable: %s", async (code, retryable) => {
    const client = createClient(PaymentService, createConnectTransport({ baseUrl: connect.baseUrl, httpVersion: "2" }));
    const error = await expectConnectError(
      client.createPayment({ accountId: "server says no", currency: String(code) }),
    );
    expect(error.code).toBe(code);
    expect(isRetryableError(error)).toBe(retryable);
  });
});

describe("retries over real broken connections", () => {
  afterEach(() => {
    serveEveryOther = false;
  });

  const breakages: Breakage[] = ["tcp-reset", "session-destroy", "goaway-error"];

  it.each(breakages)("the interceptors retry a call whose connection broke by %s, with the same ID", async (kind) => {
    breakage = kind;
    serveEveryOther = true;
    requests = 0;
    const retries: RetryEvent[] = [];
    const transport = createGrpcTransport({
      baseUrl: rawUrl,
      interceptors: [
        createRequestIdInterceptor(),
        createRetryInterceptor({ initialBackoffMs: 1, onRetry: (e) => retries.push(e) }),
      ],
    });
    const response = await createClient(PaymentService, transport).createPayment({}, { timeoutMs: 10_000 });
    expect(retries).toHaveLength(1);
    expect(response.payment?.paymentId).toBe(retries[0]?.requestId);
  });

  it.each(breakages)(
    "the generated client retries a call whose connection broke by %s, with the same ID",
    async (kind) => {
      breakage = kind;
      serveEveryOther = true;
      requests = 0;
      const retries: RetryEvent[] = [];
      const client = createPaymentServiceClient(createConnectTransport({ baseUrl: rawUrl, httpVersion: "2" }), {
        initialBackoffMs: 1,
        onRetry: (e) => retries.push(e),
      });
      const response = await client.createPayment({}, { timeoutMs: 10_000 });
      expect(retries).toHaveLength(1);
      expect(response.payment?.paymentId).toBe(retries[0]?.requestId);
    },
  );
});
