import { Code, createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { create } from "@bufbuild/protobuf";
import { CreatePaymentResponseSchema } from "../../gen/demo/v1/payments_pb.js";
import { atomicEffects, createIdempotencyInterceptor, type IdempotencyStore } from "../../src/index.js";
import { ErrorReason } from "../../src/client/index.js";
import type { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { replayedHeader } from "../../src/server/protocol-headers.js";
import { createReplayCache } from "../../src/server/replay-cache.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { captureMetadata, describeError, expectConnectError } from "../support/connect-assertions.js";
import { type IdempotencyTestServer, startIdempotencyTestServer } from "../support/idempotency-test-server.js";
import { createManualClock, type ManualClock } from "../support/manual-clock.js";
import { createTestTransport } from "../support/test-transports.js";

function entry(fingerprint: string, size: number) {
  return { fingerprint, outcome: new Uint8Array(size), firstExecutedAt: 1 };
}

describe("createReplayCache", () => {
  it("answers an entry until the TTL passes, then drops it", () => {
    let now = 0;
    const cache = createReplayCache({ maxBytes: 10_000, ttlMs: 100, clock: { now: () => now } });
    cache.set("a", entry("f", 10), Number.POSITIVE_INFINITY);
    now = 99;
    expect(cache.get("a")?.fingerprint).toBe("f");
    now = 100;
    expect(cache.get("a")).toBeUndefined();
    expect(cache.size).toBe(0);
    expect(cache.bytes).toBe(0);
  });

  it("never answers past the expiry it was given, even with a longer TTL", () => {
    let now = 0;
    const cache = createReplayCache({ maxBytes: 10_000, ttlMs: 60_000, clock: { now: () => now } });
    cache.set("a", entry("f", 10), 50);
    now = 49;
    expect(cache.get("a")).toBeDefined();
    now = 50;
    expect(cache.get("a")).toBeUndefined();
    // Already expired when given: not kept at all.
    cache.set("b", entry("f", 10), 50);
    expect(cache.size).toBe(0);
  });

  it("stays within maxBytes, evicting the least recently used entries first", () => {
    const cache = createReplayCache({ maxBytes: 1_000, ttlMs: 60_000, clock: { now: () => 0 } });
    cache.set("a", entry("f", 200), 1);
    cache.set("b", entry("f", 200), 1);
    cache.set("c", entry("f", 200), 1);
    expect(cache.size).toBe(3);
    expect(cache.bytes).toBeLessThanOrEqual(1_000);
    cache.get("a"); // now b is the least recently used
    cache.set("d", entry("f", 200), 1);
    expect(cache.bytes).toBeLessThanOrEqual(1_000);
    expect(cache.get("b")).toBeUndefined();
    expect(cache.get("a")).toBeDefined();
    expect(cache.get("d")).toBeDefined();
  });

  it("never caches an outcome larger than maxBytes, and keeps what it holds", () => {
    const cache = createReplayCache({ maxBytes: 1_000, ttlMs: 60_000, clock: { now: () => 0 } });
    cache.set("a", entry("f", 100), 1);
    cache.set("big", entry("f", 2_000), 1);
    expect(cache.get("big")).toBeUndefined();
    expect(cache.get("a")).toBeDefined();
  });

  it("replaces an entry of the same id, counting its bytes once", () => {
    const cache = createReplayCache({ maxBytes: 10_000, ttlMs: 60_000, clock: { now: () => 0 } });
    cache.set("a", entry("f1", 100), 1);
    const once = cache.bytes;
    cache.set("a", entry("f2", 100), 1);
    expect(cache.bytes).toBe(once);
    expect(cache.get("a")?.fingerprint).toBe("f2");
  });

  it("copies an outcome that is a view of a larger buffer, so that its byte count is what it keeps", () => {
    const cache = createReplayCache({ maxBytes: 10_000, ttlMs: 60_000, clock: { now: () => 0 } });
    const slab = new Uint8Array(8_192).fill(7);
    cache.set("a", { fingerprint: "f", outcome: slab.subarray(10, 20), firstExecutedAt: 1 }, 1);
    const kept = cache.get("a")?.outcome;
    expect(kept?.buffer.byteLength).toBe(10);
    expect([...(kept ?? [])]).toEqual(new Array(10).fill(7));
  });
});

/** A store that records which operations the interceptor asked of it. */
function observedStore(clock: ManualClock): { store: IdempotencyStore; calls: string[] } {
  const inner = createSqliteStore({ path: ":memory:", sweepIntervalMs: 0, clock });
  const calls: string[] = [];
  const observe =
    <A extends unknown[], R>(name: string, fn: (...args: A) => R) =>
    (...args: A): R => {
      calls.push(name);
      return fn(...args);
    };
  const store: IdempotencyStore = {
    ...inner,
    claim: observe("claim", inner.claim),
    complete: observe("complete", inner.complete),
    interrupt: observe("interrupt", inner.interrupt),
    release: observe("release", inner.release),
    renew: observe("renew", inner.renew),
    get: observe("get", inner.get),
  };
  return { store, calls };
}

function payment(requestId: string, amountMinor = 500n) {
  return { requestId, accountId: "acct_1", amountMinor, currency: "EUR" };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("the interceptor's replayCache", () => {
  const servers: IdempotencyTestServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  async function start(
    replayCache: { maxBytes: number; ttlMs: number } | false,
    more: { retentionMs?: number; scope?: Parameters<typeof createIdempotencyInterceptor>[0]["scope"] } = {},
    clock = createManualClock(),
    observed = observedStore(clock),
  ) {
    const server = await startIdempotencyTestServer({
      clock,
      store: observed.store,
      interceptor: { replayCache, ...more },
    });
    servers.push(server);
    const transport = createTestTransport(server.baseUrl, { protocol: "connect", binary: true, gzip: false });
    return { server, calls: observed.calls, payments: createClient(PaymentService, transport) };
  }

  const on = { maxBytes: 1024 * 1024, ttlMs: 60_000 };

  it("replays a completed outcome without a store call, marked replayed", async () => {
    const { server, calls, payments } = await start(on);
    const key = crypto.randomUUID();
    const first = await payments.createPayment(payment(key));
    expect(calls).toEqual(["claim", "complete"]);
    const { seen, options } = captureMetadata();
    const second = await payments.createPayment(payment(key), options);
    expect(second).toEqual(first);
    expect(seen.header.get(replayedHeader)).toBe("true");
    expect(calls).toEqual(["claim", "complete"]);
    expect(server.runs).toHaveLength(1);
    expect(server.events.map((e) => [e.type, e.fromCache])).toEqual([
      ["claimed", undefined],
      ["completed", undefined],
      ["replayed", true],
    ]);
  });

  it("caches what a handler's commit stored together with its own writes", async () => {
    const clock = createManualClock();
    const observed = observedStore(clock);
    const store = observed.store as SqliteStore;
    store.database.exec("CREATE TABLE rows (id TEXT PRIMARY KEY)");
    const server = await startIdempotencyTestServer({
      clock,
      store,
      interceptor: { replayCache: on },
      payments: {
        createPayment(req, ctx) {
          return atomicEffects(ctx, store).commit((db) => {
            db.prepare("INSERT INTO rows (id) VALUES (?)").run(req.requestId);
            return create(CreatePaymentResponseSchema, { payment: { paymentId: `pay_${req.requestId}` } });
          });
        },
      },
    });
    servers.push(server);
    const payments = createClient(
      PaymentService,
      createTestTransport(server.baseUrl, { protocol: "connect", binary: true, gzip: false }),
    );
    const key = crypto.randomUUID();
    const first = await payments.createPayment(payment(key));
    expect(observed.calls).toEqual(["claim"]);
    expect(await payments.createPayment(payment(key))).toEqual(first);
    expect(observed.calls).toEqual(["claim"]);
    expect(store.database.prepare("SELECT count(*) AS n FROM rows").get()).toEqual({ n: 1 });
  });

  it("leaves concurrent duplicates of a running call to the in-flight wait: one execution, one answer", async () => {
    const { server, calls, payments } = await start(on);
    const key = crypto.randomUUID();
    const answers = await Promise.all(Array.from({ length: 50 }, () => payments.createPayment(payment(key))));
    expect(new Set(answers.map((a) => a.payment?.paymentId))).toEqual(new Set(["pay_1"]));
    expect(server.runs).toHaveLength(1);
    expect(calls.filter((c) => c === "complete")).toHaveLength(1);
    // Once stored, later duplicates come from the cache.
    const before = calls.length;
    await payments.createPayment(payment(key));
    expect(calls).toHaveLength(before);
  });

  it("is off by default: every duplicate asks the store", async () => {
    const clock = createManualClock();
    const observed = observedStore(clock);
    const server = await startIdempotencyTestServer({ clock, store: observed.store });
    servers.push(server);
    const payments = createClient(
      PaymentService,
      createTestTransport(server.baseUrl, { protocol: "connect", binary: true, gzip: false }),
    );
    const key = crypto.randomUUID();
    await payments.createPayment(payment(key));
    await payments.createPayment(payment(key));
    expect(observed.calls).toEqual(["claim", "complete", "claim"]);
    expect(server.events.filter((e) => e.type === "replayed").map((e) => e.fromCache)).toEqual([undefined]);
  });

  it("still refuses another payload under a cached key with REQUEST_ID_REUSED, without a store call", async () => {
    const { server, calls, payments } = await start(on);
    const key = crypto.randomUUID();
    await payments.createPayment(payment(key, 500n));
    const error = await expectConnectError(payments.createPayment(payment(key, 501n)));
    expect(describeError(error)).toMatchObject({
      code: Code.FailedPrecondition,
      reason: ErrorReason.REQUEST_ID_REUSED,
    });
    expect(calls).toEqual(["claim", "complete"]);
    expect(server.runs).toHaveLength(1);
    // And the cached outcome still answers the payload it belongs to.
    expect((await payments.createPayment(payment(key, 500n))).payment?.paymentId).toBe("pay_1");
  });

  it("keeps scopes apart: the same key in another scope is its own record", async () => {
    const { server, calls } = await start(on, { scope: (req) => req.header.get("x-tenant") ?? "" });
    const payments = createClient(
      PaymentService,
      createTestTransport(server.baseUrl, { protocol: "connect", binary: true, gzip: false }),
    );
    const key = crypto.randomUUID();
    const a = await payments.createPayment(payment(key), { headers: { "x-tenant": "a" } });
    const b = await payments.createPayment(payment(key), { headers: { "x-tenant": "b" } });
    expect(a.payment?.paymentId).toBe("pay_1");
    expect(b.payment?.paymentId).toBe("pay_2");
    expect(await payments.createPayment(payment(key), { headers: { "x-tenant": "a" } })).toEqual(a);
    expect(await payments.createPayment(payment(key), { headers: { "x-tenant": "b" } })).toEqual(b);
    expect(calls).toEqual(["claim", "complete", "claim", "complete"]);
  });

  it("caches a replay read from the store", async () => {
    const clock = createManualClock();
    const observed = observedStore(clock);
    // Two interceptors on one store, as two processes on one file.
    const writer = await start(false, {}, clock, observed);
    const reader = await start(on, {}, clock, observed);
    const key = crypto.randomUUID();
    const first = await writer.payments.createPayment(payment(key));
    observed.calls.length = 0;
    expect(await reader.payments.createPayment(payment(key))).toEqual(first);
    expect(await reader.payments.createPayment(payment(key))).toEqual(first);
    expect(observed.calls).toEqual(["claim"]);
  });

  it("never replays past the retention of a record it stored", async () => {
    const { server, calls, payments } = await start(on, { retentionMs: 300 });
    const key = crypto.randomUUID();
    await payments.createPayment(payment(key));
    await payments.createPayment(payment(key));
    expect(calls).toEqual(["claim", "complete"]);
    await sleep(350);
    // The store's clock stands still, so it still holds the record; what
    // matters is that the cache let go of it and asked.
    await payments.createPayment(payment(key));
    expect(calls).toEqual(["claim", "complete", "claim"]);
    expect(server.runs).toHaveLength(1);
  });

  it("never replays past what was left of a record read from the store", async () => {
    const clock = createManualClock();
    const observed = observedStore(clock);
    const writer = await start(false, {}, clock, observed);
    const reader = await start(on, {}, clock, observed);
    const key = crypto.randomUUID();
    await writer.payments.createPayment(payment(key));
    // The record has 200 ms left by the store's clock when the reader reads it.
    clock.advance(24 * 60 * 60 * 1000 - 200);
    observed.calls.length = 0;
    await reader.payments.createPayment(payment(key));
    await reader.payments.createPayment(payment(key));
    expect(observed.calls).toEqual(["claim"]);
    await sleep(250);
    await reader.payments.createPayment(payment(key));
    expect(observed.calls).toEqual(["claim", "claim"]);
  });

  it("lets an entry go after its TTL", async () => {
    const { calls, payments } = await start({ maxBytes: 1024 * 1024, ttlMs: 100 });
    const key = crypto.randomUUID();
    await payments.createPayment(payment(key));
    await payments.createPayment(payment(key));
    await sleep(150);
    await payments.createPayment(payment(key));
    expect(calls).toEqual(["claim", "complete", "claim"]);
  });

  it("holds no more than maxBytes: a key pushed out asks the store again", async () => {
    // Room for two CreatePayment entries (about 460 bytes each), not three.
    const { calls, payments } = await start({ maxBytes: 1_000, ttlMs: 60_000 });
    const keys = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
    for (const key of keys) {
      await payments.createPayment(payment(key));
    }
    calls.length = 0;
    await payments.createPayment(payment(keys[2]!));
    await payments.createPayment(payment(keys[1]!));
    expect(calls).toEqual([]);
    await payments.createPayment(payment(keys[0]!));
    expect(calls).toEqual(["claim"]);
  });

  it("is checked at construction", () => {
    const store = createSqliteStore({ path: ":memory:", sweepIntervalMs: 0 });
    try {
      const make = (replayCache: unknown) =>
        createIdempotencyInterceptor({ store, replayCache: replayCache as { maxBytes: number; ttlMs: number } });
      expect(() => make({ maxBytes: 0, ttlMs: 1000 })).toThrow(
        /replayCache\.maxBytes must be a positive number of bytes/,
      );
      expect(() => make({ maxBytes: 1000, ttlMs: -1 })).toThrow(/replayCache\.ttlMs must be a positive number/);
      expect(() => make({ maxBytes: 1000 })).toThrow(/needs both maxBytes and ttlMs/);
      expect(() => make({ maxBytes: 1000, ttlMs: 1000, ttl: 5 })).toThrow(/unknown replayCache option "ttl"/);
      expect(() => make(true)).toThrow(/replayCache must be false or \{ maxBytes, ttlMs \}/);
      expect(() => make(false)).not.toThrow();
      expect(() => make({ maxBytes: 1000, ttlMs: 1000 })).not.toThrow();
    } finally {
      void store.close();
    }
  });
});
