import { Code, ConnectError, createClient, type ServiceImpl } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { FixtureService } from "../../gen/fixture/v1/fixture_pb.js";
import {
  createIdempotencyInterceptor,
  hashRecordKey,
  type IdempotencyStore,
  idempotencyContext,
  releaseOnError,
  storeOnError,
} from "../../src/index.js";
import { ErrorReason } from "../../src/client/index.js";
import { decodeStoredOutcome } from "../../src/protocol/index.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { captureMetadata, describeError, expectConnectError } from "../support/connect-assertions.js";
import {
  type IdempotencyTestServer,
  startIdempotencyTestServer,
  testKeyHashSecret,
} from "../support/idempotency-test-server.js";
import { createTestTransport } from "../support/test-transports.js";

const createPaymentMethod = "demo.v1.PaymentService/CreatePayment";
const day = 24 * 60 * 60 * 1000;

let server: IdempotencyTestServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(options?: Parameters<typeof startIdempotencyTestServer>[0]) {
  server = await startIdempotencyTestServer(options);
  const transport = createTestTransport(server.baseUrl, { protocol: "connect", binary: true, gzip: false });
  return {
    server,
    payments: createClient(PaymentService, transport),
    fixture: createClient(FixtureService, transport),
  };
}

function payment(requestId: string, amountMinor = 500n) {
  return { requestId, accountId: "acct_1", amountMinor, currency: "EUR" };
}

describe("which calls are deduplicated", () => {
  it("dedupes unary calls whose input has a request ID field", async () => {
    const { server, payments } = await start();
    const key = crypto.randomUUID();
    const first = await payments.createPayment(payment(key));
    const second = await payments.createPayment(payment(key));
    expect(second).toEqual(first);
    expect(server.runs).toHaveLength(1);
    expect(server.runs[0]?.context).toEqual({
      key,
      scope: "",
      method: createPaymentMethod,
      attempt: 1,
      takeover: false,
      signal: expect.any(AbortSignal),
    });
    expect(server.runs[0]?.context?.signal.aborted).toBe(false);
  });

  it("passes unary calls without a request ID field through untouched", async () => {
    const { server, fixture, payments } = await start();
    await fixture.plain({ text: "a" });
    await fixture.plain({ text: "a" });
    await payments.getPayment({ paymentId: "p" });
    expect(server.runs.map((r) => r.method)).toEqual(["plain", "plain"]);
    expect(server.events).toEqual([]);
  });

  it("passes streaming calls through untouched, even with a request ID field", async () => {
    const { server, fixture, payments } = await start();
    const key = crypto.randomUUID();
    for (let i = 0; i < 2; i++) {
      async function* chunks() {
        yield { requestId: key, chunk: new Uint8Array(3) };
        yield { requestId: key, chunk: new Uint8Array(4) };
      }
      expect((await fixture.upload(chunks())).size).toBe(7n);
      const watched = [];
      for await (const res of payments.watchPayments({ accountId: "acct_1", requestId: key })) {
        watched.push(res.payment?.paymentId);
      }
      expect(watched).toHaveLength(1);
    }
    expect(server.runs.map((r) => [r.method, r.context])).toEqual([
      ["upload", undefined],
      ["watchPayments", undefined],
      ["upload", undefined],
      ["watchPayments", undefined],
    ]);
    expect(server.events).toEqual([]);
  });
});

describe("a call with an empty request ID", () => {
  it("runs without dedupe when the method does not require a key", async () => {
    const { server, payments } = await start();
    await payments.createPayment(payment(""));
    await payments.createPayment(payment(""));
    expect(server.runs).toHaveLength(2);
    expect(server.runs.map((r) => r.context)).toEqual([undefined, undefined]);
    expect(server.events).toEqual([]);
  });

  it("refuses a call without a key when the method requires one", async () => {
    const { server, payments } = await start();
    const error = await expectConnectError(payments.refundPayment({ requestId: "", paymentId: "p", amountMinor: 1n }));
    expect(describeError(error)).toEqual({
      code: Code.InvalidArgument,
      reason: ErrorReason.REQUEST_ID_REQUIRED,
      message: "demo.v1.PaymentService.RefundPayment requires a request ID in field request_id",
    });
    expect(error.findDetails(ErrorInfoSchema)[0]?.metadata).toEqual({ field: "request_id" });
    expect(server.runs).toHaveLength(0);
  });
});

describe("request ID formats", () => {
  it("accepts UUIDs in any case and compares them in lowercase", async () => {
    const { server, payments } = await start();
    const key = crypto.randomUUID();
    const first = await payments.createPayment(payment(key.toUpperCase()));
    const second = await payments.createPayment(payment(key));
    expect(second).toEqual(first);
    expect(server.runs).toHaveLength(1);
    expect(server.runs[0]?.context?.key).toBe(key);
  });

  it.each([
    ["not-a-uuid", "must be a UUID"],
    ["3f0c8d4e5b7a4c1e9d2f6a8b0c1d2e3f", "must be a UUID"],
    [" 3f0c8d4e-5b7a-4c1e-9d2f-6a8b0c1d2e3f", "must be a UUID"],
    ["00000000-0000-0000-0000-000000000000", "must not be the nil UUID"],
  ])("refuses the UUID key %j", async (key, problem) => {
    const { server, payments } = await start();
    const error = await expectConnectError(payments.createPayment(payment(key)));
    expect(describeError(error)).toMatchObject({ code: Code.InvalidArgument, reason: ErrorReason.REQUEST_ID_INVALID });
    expect(error.rawMessage).toContain("field request_id");
    expect(error.rawMessage).toContain(problem);
    expect(server.runs).toHaveLength(0);
  });

  it("accepts opaque keys of 1 to 255 printable ASCII characters on opaque methods", async () => {
    const { server, fixture } = await start();
    for (const key of ["a", "order 42/retry#1", "~".repeat(255)]) {
      const first = await fixture.opaque({ key, text: "t" });
      expect(await fixture.opaque({ key, text: "t" })).toEqual(first);
    }
    expect(server.runs.map((r) => r.context?.key)).toEqual(["a", "order 42/retry#1", "~".repeat(255)]);
  });

  it.each([["x".repeat(256)], ["tab\there"], ["caf\u00e9"], ["line\n"]])("refuses the opaque key %j", async (key) => {
    const { server, fixture } = await start();
    const error = await expectConnectError(fixture.opaque({ key, text: "t" }));
    expect(describeError(error)).toMatchObject({ code: Code.InvalidArgument, reason: ErrorReason.REQUEST_ID_INVALID });
    expect(error.rawMessage).toBe("the request ID in field key must be 1 to 255 printable ASCII characters");
    expect(server.runs).toHaveLength(0);
  });
});

describe("a record is identified by scope, method and request ID", () => {
  it("keeps the same key in two scopes apart", async () => {
    const { server } = await start({
      interceptor: { scope: async (req) => req.header.get("x-tenant") ?? "" },
    });
    const transport = createTestTransport(server.baseUrl, { protocol: "connect", binary: true, gzip: false });
    const payments = createClient(PaymentService, transport);
    const key = crypto.randomUUID();
    const a = await payments.createPayment(payment(key), { headers: { "x-tenant": "tenant-a" } });
    const b = await payments.createPayment(payment(key), { headers: { "x-tenant": "tenant-b" } });
    expect(a.payment?.paymentId).toBe("pay_1");
    expect(b.payment?.paymentId).toBe("pay_2");
    expect(await payments.createPayment(payment(key), { headers: { "x-tenant": "tenant-a" } })).toEqual(a);
    expect(await payments.createPayment(payment(key), { headers: { "x-tenant": "tenant-b" } })).toEqual(b);
    expect(server.runs.map((r) => r.context?.scope)).toEqual(["tenant-a", "tenant-b"]);
  });

  it("keeps the same key on two methods apart", async () => {
    const { server, payments } = await start();
    const key = crypto.randomUUID();
    await payments.createPayment(payment(key));
    await payments.refundPayment({ requestId: key, paymentId: "pay_1", amountMinor: 5n });
    await payments.refundPayment({ requestId: key, paymentId: "pay_1", amountMinor: 5n });
    expect(server.runs.map((r) => r.context?.method)).toEqual([
      createPaymentMethod,
      "demo.v1.PaymentService/RefundPayment",
    ]);
  });
});

describe("claiming the key before the handler runs", () => {
  it("claims the key with a fresh owner token and a lease before the handler runs", async () => {
    let seen: Awaited<ReturnType<IdempotencyStore["get"]>>;
    const key = crypto.randomUUID();
    const { server, payments } = await start({
      interceptor: { leaseMs: 10_000 },
      payments: {
        async createPayment(_req, ctx) {
          const context = ctx.values.get(idempotencyContext);
          seen = await server?.store.get({ scope: context?.scope ?? "?", method: context?.method ?? "?", key });
          return {};
        },
      },
    });
    await payments.createPayment(payment(key));
    const now = server.clock.now();
    expect(seen).toMatchObject({
      status: "in_progress",
      leaseUntil: now + 10_000,
      expiresAt: now + day,
      outcome: undefined,
    });
    expect(seen?.owner).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(seen?.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    // The next claim of another key gets another owner token.
    const other = crypto.randomUUID();
    await payments.createPayment(payment(other));
    const record = await server.store.get({ scope: "", method: createPaymentMethod, key: other });
    expect(record?.owner).not.toBe(seen?.owner);
  });
});

describe("storing a successful response", () => {
  it("stores the response with the handler's headers and trailers, not the protocol's", async () => {
    const key = crypto.randomUUID();
    const { server, payments } = await start({
      payments: {
        createPayment(req, ctx) {
          const n = server?.record("createPayment", req.requestId, ctx.values.get(idempotencyContext));
          ctx.responseHeader.set("x-payment-region", "eu-west");
          ctx.responseTrailer.set("x-ledger-entry", `entry-${n}`);
          return { payment: { paymentId: `pay_${n}` } };
        },
      },
    });
    const first = captureMetadata();
    await payments.createPayment(payment(key), first.options);
    expect(first.seen.header.get("x-payment-region")).toBe("eu-west");
    expect(first.seen.header.get("idempotency-replayed")).toBeNull();

    const record = await server.store.get({ scope: "", method: createPaymentMethod, key });
    // Replayed for a day, then a tombstone for 30 more.
    expect(record).toMatchObject({
      status: "completed",
      replayUntil: server.clock.now() + day,
      expiresAt: server.clock.now() + 31 * day,
    });
    const outcome = decodeStoredOutcome(record?.outcome ?? new Uint8Array());
    if (outcome.kind !== "response") {
      throw new Error("expected a stored response");
    }
    expect([...outcome.header]).toEqual([["x-payment-region", "eu-west"]]);
    expect([...outcome.trailer]).toEqual([["x-ledger-entry", "entry-1"]]);

    const again = captureMetadata();
    const replayed = await payments.createPayment(payment(key), again.options);
    expect(replayed.payment?.paymentId).toBe("pay_1");
    expect(again.seen.header.get("x-payment-region")).toBe("eu-west");
    expect(again.seen.header.get("idempotency-replayed")).toBe("true");
    // When the first execution claimed the key, by the store's (manual) clock.
    expect(again.seen.header.get("idempotency-first-executed-at")).toBe(new Date(server.clock.now()).toISOString());
    expect(first.seen.header.get("idempotency-first-executed-at")).toBeNull();
    // The Connect protocol sends unary trailers as trailer- headers.
    expect(again.seen.trailer.get("x-ledger-entry")).toBe("entry-1");
    expect(server.runs).toHaveLength(1);
    expect(server.events.map((e) => [e.type, e.code])).toEqual([
      ["claimed", undefined],
      ["completed", undefined],
      ["replayed", undefined],
    ]);
  });

  it("keeps completed keys for the configured retention, or the method's own", async () => {
    const { server, payments, fixture } = await start({
      interceptor: { retentionMs: 3_600_000, tombstoneRetentionMs: 0 },
    });
    const key = crypto.randomUUID();
    await payments.createPayment(payment(key));
    await fixture.opaque({ key: "k1", text: "t" });
    const now = server.clock.now();
    expect((await server.store.get({ scope: "", method: createPaymentMethod, key }))?.expiresAt).toBe(now + 3_600_000);
    // fixture.v1.FixtureService/Opaque has (idempotency.v1.policy).retention = 60 s.
    expect(
      (await server.store.get({ scope: "", method: "fixture.v1.FixtureService/Opaque", key: "k1" }))?.expiresAt,
    ).toBe(now + 60_000);
  });
});

describe("storing, interrupting or releasing after a handler error", () => {
  const storedByDefault = [
    Code.InvalidArgument,
    Code.NotFound,
    Code.AlreadyExists,
    Code.FailedPrecondition,
    Code.OutOfRange,
    Code.Unimplemented,
    Code.Internal,
    Code.Unknown,
    Code.DataLoss,
  ];
  const indefiniteByDefault = [
    Code.Unavailable,
    Code.ResourceExhausted,
    Code.Aborted,
    Code.DeadlineExceeded,
    Code.Canceled,
  ];

  function failingPayments(makeError: (n: number) => unknown): Partial<ServiceImpl<typeof PaymentService>> {
    return {
      createPayment(req, ctx) {
        const n = server?.record("createPayment", req.requestId, ctx.values.get(idempotencyContext)) ?? 0;
        throw makeError(n);
      },
    };
  }

  it("stores errors with the default stored codes and replays code, message, details and metadata", async () => {
    let code: Code = Code.Unknown;
    const { server, payments } = await start({
      payments: failingPayments(
        (n) =>
          new ConnectError(`declined, attempt ${n}`, code, { "x-decline-code": `d${n}` }, [
            {
              desc: ErrorInfoSchema,
              value: { reason: "CARD_DECLINED", domain: "bank.example", metadata: { n: String(n) } },
            },
          ]),
      ),
    });
    for (const stored of storedByDefault) {
      code = stored;
      const key = crypto.randomUUID();
      const first = await expectConnectError(payments.createPayment(payment(key)));
      const second = await expectConnectError(payments.createPayment(payment(key)));
      expect(second.code).toBe(stored);
      expect(second.rawMessage).toBe(first.rawMessage);
      expect(second.findDetails(ErrorInfoSchema)).toEqual(first.findDetails(ErrorInfoSchema));
      expect(second.findDetails(ErrorInfoSchema)[0]?.reason).toBe("CARD_DECLINED");
      expect(second.metadata.get("x-decline-code")).toBe(first.metadata.get("x-decline-code"));
      expect(second.metadata.get("idempotency-replayed")).toBe("true");
      expect(second.metadata.get("idempotency-first-executed-at")).toBe(new Date(server.clock.now()).toISOString());
      expect(first.metadata.get("idempotency-replayed")).toBeNull();
    }
    expect(server.runs).toHaveLength(storedByDefault.length);
    expect(server.events.filter((e) => e.type === "replayed").map((e) => e.code)).toEqual(storedByDefault);
  });

  it("interrupts the key for the default indefinite codes: a retry takes it over at once, as attempt 2", async () => {
    let code: Code = Code.Unavailable;
    const { server, payments } = await start({ payments: failingPayments(() => new ConnectError("try again", code)) });
    for (const indefinite of indefiniteByDefault) {
      code = indefinite;
      const key = crypto.randomUUID();
      const before = server.runs.length;
      expect((await expectConnectError(payments.createPayment(payment(key)))).code).toBe(indefinite);
      expect(await server.store.get({ scope: "", method: createPaymentMethod, key })).toMatchObject({
        status: "interrupted",
        attempt: 1,
      });
      // No lease wait: the manual clock does not move, yet the retry runs.
      expect((await expectConnectError(payments.createPayment(payment(key)))).code).toBe(indefinite);
      expect(server.runs.slice(before).map((r) => [r.context?.attempt, r.context?.takeover])).toEqual([
        [1, false],
        [2, true],
      ]);
      expect(await server.store.get({ scope: "", method: createPaymentMethod, key })).toMatchObject({
        status: "interrupted",
        attempt: 2,
      });
    }
    expect(server.events.filter((e) => e.type === "interrupted").map((e) => e.code)).toEqual(
      indefiniteByDefault.flatMap((c) => [c, c]),
    );
    expect(server.events.filter((e) => e.type === "released")).toEqual([]);
  });

  it("lets a handler release or store one error explicitly", async () => {
    const { server, payments } = await start({
      payments: failingPayments((n) =>
        n <= 2
          ? releaseOnError(new ConnectError("validated nothing yet", Code.InvalidArgument))
          : storeOnError(new ConnectError("bank timed out after charging", Code.Unavailable)),
      ),
    });
    const released = crypto.randomUUID();
    await expectConnectError(payments.createPayment(payment(released)));
    expect(await server.store.get({ scope: "", method: createPaymentMethod, key: released })).toBeUndefined();
    await expectConnectError(payments.createPayment(payment(released)));
    expect(server.runs).toHaveLength(2);
    // A released key starts afresh: attempt 1, no takeover.
    expect(server.runs.map((r) => [r.context?.attempt, r.context?.takeover])).toEqual([
      [1, false],
      [1, false],
    ]);
    const stored = crypto.randomUUID();
    await expectConnectError(payments.createPayment(payment(stored)));
    const replayed = await expectConnectError(payments.createPayment(payment(stored)));
    expect(describeError(replayed)).toMatchObject({ code: Code.Unavailable, message: "bank timed out after charging" });
    expect(replayed.metadata.get("idempotency-replayed")).toBe("true");
    expect(server.runs).toHaveLength(3);
  });

  it("stores a thrown non-ConnectError as the internal error the client saw", async () => {
    const { server, payments } = await start({ payments: failingPayments(() => new Error("secret database detail")) });
    const key = crypto.randomUUID();
    const first = await expectConnectError(payments.createPayment(payment(key)));
    const second = await expectConnectError(payments.createPayment(payment(key)));
    expect(describeError(first)).toMatchObject({ code: Code.Internal, message: "internal error" });
    expect(describeError(second)).toMatchObject({ code: Code.Internal, message: "internal error" });
    expect(second.metadata.get("idempotency-replayed")).toBe("true");
    expect(server.runs).toHaveLength(1);
  });

  it("follows configured code lists, each code keeping its default unless named", async () => {
    let code: Code = Code.NotFound;
    const { server, payments } = await start({
      interceptor: {
        releasedCodes: [Code.NotFound],
        storedCodes: [Code.Unavailable],
        indefiniteCodes: [Code.Internal],
      },
      payments: failingPayments(() => new ConnectError("x", code)),
    });
    const runsOf = async (c: Code) => {
      code = c;
      const key = crypto.randomUUID();
      const before = server.runs.length;
      await expectConnectError(payments.createPayment(payment(key)));
      const status = (await server.store.get({ scope: "", method: createPaymentMethod, key }))?.status;
      await expectConnectError(payments.createPayment(payment(key)));
      return { runs: server.runs.length - before, status };
    };
    expect(await runsOf(Code.NotFound)).toEqual({ runs: 2, status: undefined });
    expect(await runsOf(Code.Unavailable)).toEqual({ runs: 1, status: "completed" });
    expect(await runsOf(Code.Internal)).toEqual({ runs: 2, status: "interrupted" });
    // Not named: the defaults.
    expect(await runsOf(Code.InvalidArgument)).toEqual({ runs: 1, status: "completed" });
    expect(await runsOf(Code.ResourceExhausted)).toEqual({ runs: 2, status: "interrupted" });
  });

  it("refuses a code in two lists, and a value that is no error code", () => {
    const store = createSqliteStore({ path: ":memory:", sweepIntervalMs: 0 });
    expect(() =>
      createIdempotencyInterceptor({ store, storedCodes: [Code.Unavailable], releasedCodes: [Code.Unavailable] }),
    ).toThrow("code Unavailable is in both storedCodes and releasedCodes");
    expect(() =>
      createIdempotencyInterceptor({ store, indefiniteCodes: [Code.Internal], storedCodes: [Code.Internal] }),
    ).toThrow("code Internal is in both storedCodes and indefiniteCodes");
    expect(() => createIdempotencyInterceptor({ store, releasedCodes: [99 as Code] })).toThrow(
      "releasedCodes holds 99, which is not an error code",
    );
    void store.close();
  });
});

describe("the same request ID with another payload", () => {
  it("refuses the same key with another payload without running the handler", async () => {
    const { server, payments } = await start();
    const key = crypto.randomUUID();
    await payments.createPayment(payment(key, 500n));
    const error = await expectConnectError(payments.createPayment(payment(key, 501n)));
    expect(describeError(error)).toEqual({
      code: Code.FailedPrecondition,
      reason: ErrorReason.REQUEST_ID_REUSED,
      message:
        "the request ID in field request_id was already used for a request with different content; " +
        "use a new request ID for a new request",
    });
    expect(server.runs).toHaveLength(1);
    expect(server.events.at(-1)?.type).toBe("mismatch");
    // The first payload still replays.
    expect((await payments.createPayment(payment(key, 500n))).payment?.paymentId).toBe("pay_1");
  });
});

describe("a completed record past its retention", () => {
  it("treats a completed record past its retention as absent", async () => {
    // Without tombstones: a record past its replay window is gone (see tombstones.test.ts for the default).
    const { server, payments, fixture } = await start({
      interceptor: { retentionMs: 10_000, tombstoneRetentionMs: 0 },
    });
    const key = crypto.randomUUID();
    await payments.createPayment(payment(key));
    server.clock.advance(9_999);
    expect((await payments.createPayment(payment(key))).payment?.paymentId).toBe("pay_1");
    server.clock.advance(1);
    expect((await payments.createPayment(payment(key))).payment?.paymentId).toBe("pay_2");
    expect(server.events.map((e) => e.type)).toEqual(["claimed", "completed", "replayed", "expired", "completed"]);

    // The method's own retention (60 s) overrides the option.
    await fixture.opaque({ key: "k", text: "t" });
    server.clock.advance(59_999);
    expect((await fixture.opaque({ key: "k", text: "t" })).executions).toBe(3);
    server.clock.advance(1);
    expect((await fixture.opaque({ key: "k", text: "t" })).executions).toBe(4);
  });
});

describe("when the store fails", () => {
  it("fails closed with UNAVAILABLE when the store cannot claim, and never runs the handler", async () => {
    const real = createSqliteStore({ path: ":memory:", sweepIntervalMs: 0 });
    const failure = new Error("SQLITE_BUSY: database is locked");
    const store: IdempotencyStore = { ...real, claim: () => Promise.reject(failure), close: () => real.close() };
    const { server, payments } = await start({ store });
    const error = await expectConnectError(payments.createPayment(payment(crypto.randomUUID())));
    expect(describeError(error)).toEqual({
      code: Code.Unavailable,
      reason: ErrorReason.STORE_UNAVAILABLE,
      message: "the idempotency store is unavailable, so the request did not run; retry later",
    });
    expect(server.runs).toHaveLength(0);
    expect(server.events).toMatchObject([
      {
        type: "store_error",
        operation: "claim",
        error: failure,
        willRetry: false,
        storeCalls: [{ operation: "claim", failed: true }],
      },
    ]);
  });

  it("answers the caller when completion fails, and retries the write in the background", async () => {
    const real = createSqliteStore({ path: ":memory:", sweepIntervalMs: 0 });
    let failures = 2;
    const store: IdempotencyStore = {
      ...real,
      complete: (input) => (failures-- > 0 ? Promise.reject(new Error("SQLITE_FULL")) : real.complete(input)),
      close: () => real.close(),
    };
    const { server, payments } = await start({ store });
    const key = crypto.randomUUID();
    const first = await payments.createPayment(payment(key));
    expect(first.payment?.paymentId).toBe("pay_1");
    // Until the write lands, the claim is held: the record stays in progress.
    expect((await real.get({ scope: "", method: createPaymentMethod, key }))?.status).toBe("in_progress");
    await expect.poll(() => server.events.at(-1)?.type, { timeout: 5_000 }).toBe("completed");
    expect(server.events.map((e) => [e.type, e.operation, e.willRetry])).toEqual([
      ["claimed", undefined, undefined],
      ["store_error", "complete", true],
      ["store_error", "complete", true],
      ["completed", undefined, undefined],
    ]);
    expect(await payments.createPayment(payment(key))).toEqual(first);
    expect(server.runs).toHaveLength(1);
  });
});

describe("outcomes larger than maxStoredBytes", () => {
  it("stores RESPONSE_TOO_LARGE instead of an outcome above maxStoredBytes; the retry does not run again", async () => {
    const { server, fixture } = await start({ interceptor: { maxStoredBytes: 1_000 } });
    const first = await fixture.opaque({ key: "big", text: "t", responseSize: 2_000 });
    expect(first.filler.byteLength).toBe(2_000);
    const error = await expectConnectError(fixture.opaque({ key: "big", text: "t", responseSize: 2_000 }));
    expect(describeError(error)).toMatchObject({
      code: Code.FailedPrecondition,
      reason: ErrorReason.RESPONSE_TOO_LARGE,
    });
    expect(error.rawMessage).toContain("already ran");
    expect(error.metadata.get("idempotency-replayed")).toBe("true");
    expect(server.runs).toHaveLength(1);
    expect(server.events.find((e) => e.type === "too_large")?.responseBytes).toBeGreaterThan(2_000);
    // Small responses are still stored.
    const small = await fixture.opaque({ key: "small", text: "t", responseSize: 10 });
    expect(await fixture.opaque({ key: "small", text: "t", responseSize: 10 })).toEqual(small);
  });

  it("refuses outcomes above 4 MiB by default", async () => {
    const { server, fixture } = await start();
    const size = 4 * 1024 * 1024;
    expect((await fixture.opaque({ key: "huge", text: "t", responseSize: size })).filler.byteLength).toBe(size);
    const error = await expectConnectError(fixture.opaque({ key: "huge", text: "t", responseSize: size }));
    expect(describeError(error).reason).toBe(ErrorReason.RESPONSE_TOO_LARGE);
    const justBelow = size - 100;
    const fits = await fixture.opaque({ key: "fits", text: "t", responseSize: justBelow });
    expect((await fixture.opaque({ key: "fits", text: "t", responseSize: justBelow })).executions).toBe(
      fits.executions,
    );
    expect(server.runs).toHaveLength(2);
  });
});

describe("events", () => {
  it("hash keys, never show them in clear, and report each store call once", async () => {
    const { server, payments } = await start({ interceptor: { scope: () => "tenant-a" } });
    const key = crypto.randomUUID();
    await payments.createPayment(payment(key));
    await payments.createPayment(payment(key));
    expect(server.events.map((e) => e.type)).toEqual(["claimed", "completed", "replayed"]);
    const keyHash = hashRecordKey({ scope: "tenant-a", method: createPaymentMethod, key }, testKeyHashSecret);
    expect(keyHash).toMatch(/^[0-9a-f]{32}$/);
    for (const event of server.events) {
      expect(event).toMatchObject({ method: createPaymentMethod, keyHash });
      expect(Math.abs(event.at - Date.now())).toBeLessThan(60_000);
      expect(JSON.stringify(event, (_, v: unknown) => (typeof v === "bigint" ? String(v) : v))).not.toContain(key);
    }
    expect(server.events.map((e) => e.storeCalls?.map((c) => [c.operation, c.failed]))).toEqual([
      [["claim", false]],
      [["complete", false]],
      [["claim", false]],
    ]);
    expect(hashRecordKey({ scope: "tenant-b", method: createPaymentMethod, key }, testKeyHashSecret)).not.toBe(keyHash);
  });

  it("a throwing listener does not fail calls", async () => {
    const { server, payments } = await start({
      interceptor: {
        onEvent() {
          throw new Error("listener bug");
        },
      },
    });
    const key = crypto.randomUUID();
    const first = await payments.createPayment(payment(key));
    expect(await payments.createPayment(payment(key))).toEqual(first);
    expect(server.runs).toHaveLength(1);
  });
});
