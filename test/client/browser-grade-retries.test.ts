import { Code, ConnectError } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { createPaymentServiceClient } from "../../gen/demo/v1/payments_idempotency.js";
import {
  callWithOutcome,
  isRetryableError,
  randomRequestId,
  readReplayInfo,
  replayedHeader,
} from "../../src/client/index.js";
import { idempotencyContext } from "../../src/server/idempotency-context.js";
import { expectConnectError } from "../support/connect-assertions.js";
import { type IdempotencyTestServer, startIdempotencyTestServer } from "../support/idempotency-test-server.js";

const uuidV4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("isRetryableError for browser failures", () => {
  // What connect-web makes of a fetch that failed: Unknown, the TypeError as cause.
  const fromFetch = (message: string) => ConnectError.from(new TypeError(message));

  it("retries fetch's network failures of Chromium, Firefox and Safari", () => {
    for (const message of [
      "Failed to fetch",
      "network error",
      "NetworkError when attempting to fetch resource.",
      "Load failed",
    ]) {
      const error = fromFetch(message);
      expect([error.code, isRetryableError(error)]).toEqual([Code.Unknown, true]);
    }
  });

  it("does not retry a TypeError of the caller's own code", () => {
    expect(isRetryableError(fromFetch("Cannot read properties of undefined (reading 'id')"))).toBe(false);
  });

  it("never retries an error that came with idempotency-replayed: true, whatever its code", () => {
    const replayed = new ConnectError("card limit", Code.Unavailable, new Headers({ [replayedHeader]: "true" }));
    const fresh = new ConnectError("card limit", Code.Unavailable);
    expect([isRetryableError(replayed), isRetryableError(fresh)]).toEqual([false, true]);
  });
});

describe("randomRequestId", () => {
  const original = Object.getOwnPropertyDescriptor(globalThis, "crypto");
  afterEach(() => {
    if (original !== undefined) {
      Object.defineProperty(globalThis, "crypto", original);
    }
  });

  it("makes UUIDv4s from getRandomValues where randomUUID is missing, as on a non-secure origin", () => {
    const webCrypto = globalThis.crypto;
    let drawn = 0;
    Object.defineProperty(globalThis, "crypto", {
      configurable: true,
      value: {
        getRandomValues: (array: Uint8Array) => {
          drawn++;
          return webCrypto.getRandomValues(array);
        },
      },
    });
    const ids = Array.from({ length: 50 }, () => randomRequestId());
    expect(drawn).toBe(50);
    expect(ids.every((id) => uuidV4.test(id))).toBe(true);
    expect(new Set(ids).size).toBe(50);
  });
});

describe("replays as the caller sees them", () => {
  let server: IdempotencyTestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it("tells a replayed answer and its first execution apart from a new one (callWithOutcome)", async () => {
    server = await startIdempotencyTestServer();
    // The server sends when the first execution claimed the key, by its store's (manual) clock.
    const firstExecutedAt = new Date(server.clock.now()).toISOString();
    const client = createPaymentServiceClient(createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "2" }));
    const request = { requestId: randomRequestId(), accountId: "acct_r", amountMinor: 10n, currency: "EUR" };
    const first = await callWithOutcome(client.createPayment, request);
    const second = await callWithOutcome(client.createPayment, request);
    expect([first.replayed, first.firstExecutedAt, first.requestId]).toEqual([false, undefined, request.requestId]);
    expect([second.replayed, second.firstExecutedAt?.toISOString(), second.requestId]).toEqual([
      true,
      firstExecutedAt,
      request.requestId,
    ]);
    expect(second.response).toEqual(first.response);
    expect(server.runs).toHaveLength(1);
  });

  it("does not retry a stored error once it comes back replayed", async () => {
    server = await startIdempotencyTestServer({
      // A definite answer of the handler with a code that is otherwise retried.
      interceptor: { storedCodes: [Code.ResourceExhausted] },
      payments: {
        createPayment(req, ctx) {
          server?.record("createPayment", req.requestId, ctx.values.get(idempotencyContext));
          throw new ConnectError("the card's limit is reached", Code.ResourceExhausted);
        },
      },
    });
    const attempts: number[] = [];
    const client = createPaymentServiceClient(createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "2" }), {
      sleep: async () => undefined,
      onRetry: (event) => attempts.push(event.attempt),
    });
    const error = await expectConnectError(client.createPayment({ accountId: "acct_limit", amountMinor: 10n }));
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(readReplayInfo(error.metadata).replayed).toBe(true);
    // One retry met the stored answer; no more followed.
    expect(attempts).toEqual([1]);
    expect(server.runs).toHaveLength(1);
  });
});
