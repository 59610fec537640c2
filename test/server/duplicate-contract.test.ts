import { create, fromBinary, fromJson, toBinary } from "@bufbuild/protobuf";
import { Code, type ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { FixtureService, StampedRequestSchema, StampedResponseSchema } from "../../gen/fixture/v1/fixture_pb.js";
import { StoredOutcomeSchema } from "../../gen/idempotency/v1/stored_outcome_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { IdempotencyStore } from "../../src/index.js";
import { encodeStoredOutcome, fingerprintRequest } from "../../src/protocol/index.js";
import { ErrorReason } from "../../src/errors/error-reason.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { captureMetadata, describeError, expectConnectError } from "../support/connect-assertions.js";
import { type IdempotencyTestServer, startIdempotencyTestServer } from "../support/idempotency-test-server.js";
import { useTestSchema } from "../support/postgres-database.js";
import { createTestTransport, type TransportVariant } from "../support/test-transports.js";

const rfc3339Millis = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const schema = useTestSchema("duplicate_contract");

const variants: readonly Pick<TransportVariant, "name" | "protocol" | "binary" | "gzip">[] = [
  { name: "connect binary", protocol: "connect", binary: true, gzip: false },
  { name: "connect json", protocol: "connect", binary: false, gzip: false },
  { name: "grpc binary", protocol: "grpc", binary: true, gzip: true },
  { name: "grpc-web binary", protocol: "grpc-web", binary: true, gzip: false },
];

const stores: readonly { name: string; open: () => Promise<IdempotencyStore> }[] = [
  // The store's real clock: the announced times are the store's.
  { name: "sqlite", open: async () => createSqliteStore({ path: ":memory:", sweepIntervalMs: 0 }) },
  { name: "postgres", open: () => schema.openStore({ sweepIntervalMs: 0 }) },
];

function errorInfo(error: ConnectError): Record<string, string> {
  return error.findDetails(ErrorInfoSchema)[0]?.metadata ?? {};
}

describe.each(stores)("the contract past replay, on $name", (storeKind) => {
  let server: IdempotencyTestServer;

  beforeAll(async () => {
    server = await startIdempotencyTestServer({ store: await storeKind.open() });
  });

  afterAll(async () => {
    await server.close();
  });

  const record = (method: string, key: string) =>
    server.store.get({ scope: "", method: `fixture.v1.FixtureService/${method}`, key });

  describe("idempotency-expires", () => {
    it.each(variants)("is on the first execution and on the replay over $name", async (variant) => {
      const client = createClient(PaymentService, createTestTransport(server.baseUrl, variant));
      const requestId = crypto.randomUUID();
      const request = { requestId, accountId: "acct_1", amountMinor: 100n, currency: "EUR" };
      const first = captureMetadata();
      await client.createPayment(request, first.options);
      const again = captureMetadata();
      await client.createPayment(request, again.options);
      const stored = await server.store.get({
        scope: "",
        method: "demo.v1.PaymentService/CreatePayment",
        key: requestId,
      });
      expect(stored?.status).toBe("completed");
      // The end of the replay window, not of the tombstone after it.
      const expiresAt = stored?.replayUntil ?? 0;
      const firstText = first.seen.header.get("idempotency-expires") ?? "";
      expect(firstText).toMatch(rfc3339Millis);
      // Estimated from the store's clock at the claim: never later than the
      // store's own expiry, and short of it by at most the call's duration.
      expect(Date.parse(firstText)).toBeLessThanOrEqual(expiresAt);
      expect(Date.parse(firstText)).toBeGreaterThan(expiresAt - 5_000);
      expect(again.seen.header.get("idempotency-replayed")).toBe("true");
      expect(again.seen.header.get("idempotency-expires")).toBe(new Date(expiresAt).toISOString());
    });

    it("is on a replayed error", async () => {
      const client = createClient(FixtureService, createTestTransport(server.baseUrl, variants[0]!));
      const requestId = crypto.randomUUID();
      await expectConnectError(client.reject({ requestId, fail: "no" }));
      const again = await expectConnectError(client.reject({ requestId, fail: "no" }));
      const stored = await record("Reject", requestId);
      expect(again.metadata.get("idempotency-expires")).toBe(new Date(stored?.replayUntil ?? 0).toISOString());
    });
  });

  describe("on_duplicate: DUPLICATE_MODE_REJECT", () => {
    it.each(variants)("refuses a duplicate with ALREADY_EXISTS and stores no body, over $name", async (variant) => {
      const client = createClient(FixtureService, createTestTransport(server.baseUrl, variant));
      const requestId = crypto.randomUUID();
      const runs = server.runs.length;
      const first = captureMetadata();
      const answer = await client.reject({ requestId, text: "personal data" }, first.options);
      expect(answer.name).toMatch(/^things\/thing_\d+$/);
      expect(first.seen.header.get("idempotency-expires")).toMatch(rfc3339Millis);
      const error = await expectConnectError(client.reject({ requestId, text: "personal data" }));
      const stored = await record("Reject", requestId);
      expect(describeError(error)).toMatchObject({
        code: Code.AlreadyExists,
        reason: ErrorReason.REQUEST_ID_ALREADY_EXECUTED,
      });
      expect(error.rawMessage).toContain(answer.name);
      const metadata = errorInfo(error);
      expect(metadata.resource_name).toBe(answer.name);
      expect(metadata.first_executed_at).toMatch(rfc3339Millis);
      expect(Date.parse(metadata.completed_at ?? "")).toBe(stored?.updatedAt);
      expect(error.metadata.get("idempotency-replayed")).toBe("true");
      expect(server.runs.length - runs).toBe(1);
      // The stored bytes are exactly "it ran, and created this": no response, no headers.
      expect(stored?.outcome).toEqual(encodeStoredOutcome({ kind: "executed", resourceName: answer.name }));
      expect(fromBinary(StoredOutcomeSchema, stored?.outcome ?? new Uint8Array()).result.case).toBe("executed");
    });

    it("replays a stored error as it is", async () => {
      const client = createClient(FixtureService, createTestTransport(server.baseUrl, variants[0]!));
      const requestId = crypto.randomUUID();
      const first = await expectConnectError(client.reject({ requestId, fail: "declined" }));
      const again = await expectConnectError(client.reject({ requestId, fail: "declined" }));
      expect(again.code).toBe(Code.FailedPrecondition);
      expect(again.rawMessage).toBe(first.rawMessage);
      expect(again.metadata.get("idempotency-replayed")).toBe("true");
    });
  });

  describe("key_fields", () => {
    it("dedupes by the natural key: one execution per order, another order runs", async () => {
      const client = createClient(FixtureService, createTestTransport(server.baseUrl, variants[0]!));
      const orderId = `ord_${crypto.randomUUID()}`;
      const runs = server.runs.length;
      const one = await client.placeOrder({ orderId, shop: { id: "s/1" }, quantity: 2 });
      const two = await client.placeOrder({ orderId, shop: { id: "s/1" }, quantity: 2 });
      expect(two).toEqual(one);
      expect(server.runs.length - runs).toBe(1);
      const other = await client.placeOrder({ orderId: `${orderId}-b`, shop: { id: "s/1" }, quantity: 2 });
      expect(other.executions).not.toBe(one.executions);
      const otherShop = await client.placeOrder({ orderId, shop: { id: "s/2" }, quantity: 2 });
      expect(otherShop.executions).not.toBe(one.executions);
      expect(server.runs.length - runs).toBe(3);
      expect(await record("PlaceOrder", `order_id=${encodeURIComponent(orderId)}&shop.id=s%2F1`)).toMatchObject({
        status: "completed",
      });
    });

    it("refuses the same key with other content, and a request without its key", async () => {
      const client = createClient(FixtureService, createTestTransport(server.baseUrl, variants[0]!));
      const orderId = `ord_${crypto.randomUUID()}`;
      await client.placeOrder({ orderId, shop: { id: "s1" }, quantity: 1 });
      const reused = await expectConnectError(client.placeOrder({ orderId, shop: { id: "s1" }, quantity: 5 }));
      expect(describeError(reused)).toMatchObject({
        code: Code.FailedPrecondition,
        reason: ErrorReason.REQUEST_ID_REUSED,
      });
      expect(reused.rawMessage).toContain("order_id, shop.id");
      const missing = await expectConnectError(client.placeOrder({ orderId, quantity: 1 }));
      expect(describeError(missing)).toMatchObject({
        code: Code.InvalidArgument,
        reason: ErrorReason.REQUEST_ID_REQUIRED,
      });
      expect(missing.rawMessage).toContain("shop.id");
    });
  });

  describe("fingerprint_exclude and fingerprint versions", () => {
    const stamped = (requestId: string, at: bigint, traceId: string, tenant = "t1", text = "hello") => ({
      requestId,
      text,
      clientSentAt: { seconds: at },
      trace: { id: traceId, tenant },
    });

    it("replays a retry that changed only excluded fields; refuses one that changed another", async () => {
      const client = createClient(FixtureService, createTestTransport(server.baseUrl, variants[0]!));
      const requestId = crypto.randomUUID();
      const runs = server.runs.length;
      const first = await client.stamped(stamped(requestId, 1n, "trace-a"));
      const again = captureMetadata();
      const retry = await client.stamped(stamped(requestId, 2n, "trace-b"), again.options);
      expect(retry).toEqual(first);
      expect(again.seen.header.get("idempotency-replayed")).toBe("true");
      expect(server.runs.length - runs).toBe(1);
      for (const changed of [stamped(requestId, 1n, "trace-a", "t2"), stamped(requestId, 1n, "trace-a", "t1", "bye")]) {
        const error = await expectConnectError(client.stamped(changed));
        expect(describeError(error)).toMatchObject({ reason: ErrorReason.REQUEST_ID_REUSED });
      }
      expect((await record("Stamped", requestId))?.fingerprint).toMatch(/^2:client_sent_at,trace\.id:[0-9a-f]{64}$/);
    });

    it("still replays a record written with a version 1 (bare hex) fingerprint, and takes over an interrupted one", async () => {
      const client = createClient(FixtureService, createTestTransport(server.baseUrl, variants[0]!));
      const v1Record = async (requestId: string, complete: boolean) => {
        const message = create(StampedRequestSchema, stamped(requestId, 7n, "trace-old"));
        const fingerprint = fingerprintRequest(StampedRequestSchema, message, StampedRequestSchema.field.requestId);
        expect(fingerprint).toMatch(/^[0-9a-f]{64}$/);
        const key = { scope: "", method: "fixture.v1.FixtureService/Stamped", key: requestId };
        const owner = crypto.randomUUID();
        await server.store.claim({ key, fingerprint, owner, leaseMs: 30_000, graceMs: 2_000, expiresInMs: 60_000 });
        if (complete) {
          const response = toBinary(StampedResponseSchema, create(StampedResponseSchema, { executions: 99 }));
          const outcome = encodeStoredOutcome({
            kind: "response",
            response,
            header: new Headers(),
            trailer: new Headers(),
          });
          expect(await server.store.complete({ key, owner, attempt: 1, outcome, retentionMs: 60_000 })).toBe(true);
        } else {
          expect(await server.store.interrupt({ key, owner, attempt: 1 })).toBe(true);
        }
      };
      const completed = crypto.randomUUID();
      await v1Record(completed, true);
      const runs = server.runs.length;
      expect((await client.stamped(stamped(completed, 7n, "trace-old"))).executions).toBe(99);
      const reused = await expectConnectError(client.stamped(stamped(completed, 7n, "trace-old", "t1", "other")));
      expect(describeError(reused)).toMatchObject({ reason: ErrorReason.REQUEST_ID_REUSED });
      expect(server.runs.length - runs).toBe(0);

      const interrupted = crypto.randomUUID();
      await v1Record(interrupted, false);
      const takeover = await client.stamped(stamped(interrupted, 7n, "trace-old"));
      expect(server.runs.length - runs).toBe(1);
      expect(server.runs.at(-1)?.context).toMatchObject({ attempt: 2, takeover: true });
      expect((await client.stamped(stamped(interrupted, 7n, "trace-old"))).executions).toBe(takeover.executions);
      expect(server.runs.length - runs).toBe(1);
    });
  });

  it("gives binary and JSON encodings of one request the same fingerprint", async () => {
    const requestId = crypto.randomUUID();
    const init = { key: requestId, text: "same", labels: { b: "2", a: "1" }, numbers: [3, 1], delay: { seconds: 5n } };
    const binaryClient = createClient(FixtureService, createTestTransport(server.baseUrl, variants[0]!));
    const jsonClient = createClient(FixtureService, createTestTransport(server.baseUrl, variants[1]!));
    const runs = server.runs.length;
    const first = await binaryClient.opaque(init);
    const again = captureMetadata();
    expect(await jsonClient.opaque(init, again.options)).toEqual(first);
    expect(again.seen.header.get("idempotency-replayed")).toBe("true");
    expect(server.runs.length - runs).toBe(1);
  });
});

describe('onDuplicate: "reject" as the interceptor default', () => {
  it("applies to methods whose policy sets no on_duplicate", async () => {
    const server = await startIdempotencyTestServer({ interceptor: { onDuplicate: "reject" } });
    try {
      const client = createClient(PaymentService, createTestTransport(server.baseUrl, variants[0]!));
      const request = { requestId: crypto.randomUUID(), accountId: "acct_1", amountMinor: 1n, currency: "EUR" };
      await client.createPayment(request);
      const error = await expectConnectError(client.createPayment(request));
      expect(describeError(error)).toMatchObject({
        code: Code.AlreadyExists,
        reason: ErrorReason.REQUEST_ID_ALREADY_EXECUTED,
      });
      expect(errorInfo(error).resource_name).toBeUndefined();
    } finally {
      await server.close();
    }
  });

  it("refuses an unknown mode", async () => {
    await expect(startIdempotencyTestServer({ interceptor: { onDuplicate: "twice" as "reject" } })).rejects.toThrow(
      /onDuplicate must be "replay" or "reject"/,
    );
  });
});

it("fingerprints the JSON and binary forms of a request alike", () => {
  const message = create(StampedRequestSchema, { requestId: "x", text: "t", trace: { id: "1", tenant: "a" } });
  const viaJson = fromJson(StampedRequestSchema, { requestId: "y", text: "t", trace: { tenant: "a", id: "1" } });
  const viaBinary = fromBinary(StampedRequestSchema, toBinary(StampedRequestSchema, message));
  const field = StampedRequestSchema.field.requestId;
  expect(fingerprintRequest(StampedRequestSchema, viaJson, field)).toBe(
    fingerprintRequest(StampedRequestSchema, viaBinary, field),
  );
});

it("starts an expired version 1 record afresh in the current fingerprint form", async () => {
  const server = await startIdempotencyTestServer();
  try {
    const client = createClient(FixtureService, createTestTransport(server.baseUrl, variants[0]!));
    const requestId = crypto.randomUUID();
    const request = (at: bigint) => ({ requestId, text: "t", clientSentAt: { seconds: at }, trace: { id: `x${at}` } });
    const key = { scope: "", method: "fixture.v1.FixtureService/Stamped", key: requestId };
    const fingerprint = fingerprintRequest(
      StampedRequestSchema,
      create(StampedRequestSchema, request(1n)),
      StampedRequestSchema.field.requestId,
    );
    const owner = crypto.randomUUID();
    await server.store.claim({ key, fingerprint, owner, leaseMs: 1_000, graceMs: 500, expiresInMs: 1_000 });
    const outcome = encodeStoredOutcome({
      kind: "response",
      response: new Uint8Array(),
      header: new Headers(),
      trailer: new Headers(),
    });
    await server.store.complete({ key, owner, attempt: 1, outcome, retentionMs: 1_000 });
    server.clock.advance(5_000);
    const fresh = await client.stamped(request(1n));
    expect(fresh.executions).toBeGreaterThan(0);
    expect((await server.store.get(key))?.fingerprint).toMatch(/^2:/);
    // A retry that changed only the excluded fields replays the fresh outcome.
    expect(await client.stamped(request(2n))).toEqual(fresh);
  } finally {
    await server.close();
  }
});
