import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { CreatePaymentRequestSchema, PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { type IdempotencyStore, idempotencyContext } from "../../src/index.js";
import { ErrorReason, findErrorReason, findRetryDelayMs } from "../../src/client/index.js";
import { fingerprintRequest } from "../../src/protocol/index.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { type Gate, createArrivalCounter, createGate } from "../support/call-gates.js";
import { describeError, expectConnectError } from "../support/connect-assertions.js";
import {
  type IdempotencyTestServer,
  type IdempotencyTestServerOptions,
  startIdempotencyTestServer,
} from "../support/idempotency-test-server.js";
import { type ManualClock, createManualClock } from "../support/manual-clock.js";
import { usePerTestScratch } from "../support/per-test-scratch.js";
import { retryWhileInProgress } from "../support/retry-while-in-progress.js";
import { createTestTransport } from "../support/test-transports.js";

const method = "demo.v1.PaymentService/CreatePayment";

const scratch = usePerTestScratch("idempotency-in-flight-");

/**
 * A store on this test's file, as another process would open it: on
 * `clock` (the store's clock decides leases), with a busy timeout short
 * enough for the 1 s leases of the tests below.
 */
function sharedStore(clock?: ManualClock): IdempotencyStore {
  return createSqliteStore({
    path: join(scratch.dir, "records.db"),
    sweepIntervalMs: 0,
    busyTimeoutMs: 300,
    ...(clock === undefined ? {} : { clock }),
  });
}

/**
 * Starts a server whose CreatePayment handler signals `entered` and then
 * waits for `gate`; with `failFirst`, its first run fails with Unavailable
 * (an indefinite error) once the gate opens.
 */
async function startGated(
  gate: Gate,
  options: IdempotencyTestServerOptions & { failFirst?: boolean } = {},
): Promise<{ server: IdempotencyTestServer; entered: Promise<void>; client: ReturnType<typeof paymentsClient> }> {
  let signalEntered!: () => void;
  const entered = new Promise<void>((resolve) => (signalEntered = resolve));
  const server: IdempotencyTestServer = await startIdempotencyTestServer({
    ...options,
    payments: {
      async createPayment(req, ctx) {
        const n = server.record("createPayment", req.requestId, ctx.values.get(idempotencyContext));
        signalEntered();
        await gate.opened;
        if (options.failFirst === true && n === 1) {
          throw new ConnectError("bank unreachable", Code.Unavailable);
        }
        return { payment: { paymentId: `pay_${n}_${server.port}`, amountMinor: req.amountMinor } };
      },
    },
  });
  scratch.closeAfter(() => server.close());
  return { server, entered, client: paymentsClient(server) };
}

function paymentsClient(server: IdempotencyTestServer) {
  return createClient(
    PaymentService,
    createTestTransport(server.baseUrl, { protocol: "grpc", binary: true, gzip: false }),
  );
}

function payment(requestId: string, amountMinor = 100n) {
  return { requestId, accountId: "acct_1", amountMinor, currency: "EUR" };
}

/** A store that reports each call of one operation, around a real store. */
function observedStore(real: IdempotencyStore, operation: "get" | "renew") {
  let calls = 0;
  const waiting: { n: number; resolve: () => void }[] = [];
  const store: IdempotencyStore = {
    ...real,
    [operation]: async (input: never) => {
      const result = await (real[operation] as (i: never) => Promise<unknown>)(input);
      calls += 1;
      for (const w of waiting.filter((w) => w.n <= calls)) {
        w.resolve();
      }
      return result;
    },
    close: () => real.close(),
  };
  return {
    store,
    /** Resolves once the operation has completed `n` more times; rejects after 5 s. */
    next(n = 1) {
      return new Promise<void>((resolve, reject) => {
        waiting.push({ n: calls + n, resolve });
        setTimeout(
          () => reject(new Error(`store ${operation} was not called ${n} more times within 5 s`)),
          5_000,
        ).unref();
      });
    },
  };
}

describe("a duplicate while the first call runs", () => {
  it("a duplicate in the same process waits for the first call's outcome, without polling the store", async () => {
    const gate = createGate();
    const arrivals = createArrivalCounter();
    const { server, entered, client } = await startGated(gate, { adapter: { interceptors: [arrivals.interceptor] } });
    const key = crypto.randomUUID();
    const first = client.createPayment(payment(key));
    await entered;
    const second = client.createPayment(payment(key));
    await arrivals.until(2);
    gate.open();
    expect(await second).toEqual(await first);
    expect(server.runs).toHaveLength(1);
    const waited = server.events.find((e) => e.type === "waited");
    expect(waited).toMatchObject({ waitResult: "outcome" });
    expect(server.events.flatMap((e) => e.storeCalls ?? []).map((c) => c.operation)).not.toContain("get");
    // Waiters wake once the outcome is written.
    expect(server.events.map((e) => e.type)).toEqual(["claimed", "completed", "waited", "replayed"]);
  });

  it("after maxWaitMs, answers ABORTED with REQUEST_IN_PROGRESS and a RetryInfo delay; the retry gets the outcome", async () => {
    const gate = createGate();
    const { server, entered, client } = await startGated(gate, { interceptor: { maxWaitMs: 50 } });
    const key = crypto.randomUUID();
    const first = client.createPayment(payment(key));
    await entered;
    const error = await expectConnectError(client.createPayment(payment(key)));
    expect(describeError(error)).toEqual({
      code: Code.Aborted,
      reason: ErrorReason.REQUEST_IN_PROGRESS,
      message: "a request with this request ID is still running; retry when it has finished",
    });
    expect(findRetryDelayMs(error)).toBe(1_000);
    expect(server.events.slice(-2).map((e) => [e.type, e.waitResult])).toEqual([
      ["waited", "timeout"],
      ["conflict", undefined],
    ]);
    gate.open();
    const original = await first;
    expect(await client.createPayment(payment(key))).toEqual(original);
    expect(server.runs).toHaveLength(1);
  });

  it("never waits beyond the call's deadline", async () => {
    const gate = createGate();
    const { server, entered, client } = await startGated(gate, { interceptor: { maxWaitMs: 120_000 } });
    const key = crypto.randomUUID();
    const first = client.createPayment(payment(key));
    await entered;
    const error = await expectConnectError(client.createPayment(payment(key), { timeoutMs: 200 }));
    expect(error.code).toBe(Code.DeadlineExceeded);
    await expect.poll(() => server.events.find((e) => e.type === "waited")).toMatchObject({ waitResult: "timeout" });
    expect(server.events.find((e) => e.type === "waited")?.waitedMs).toBeLessThan(120_000);
    gate.open();
    await first;
  }, 20_000);

  it("when the first call fails indefinitely, the waiting duplicate takes it over at once and runs as attempt 2", async () => {
    const gate = createGate();
    const arrivals = createArrivalCounter();
    const { server, entered, client } = await startGated(gate, {
      failFirst: true,
      adapter: { interceptors: [arrivals.interceptor] },
    });
    const key = crypto.randomUUID();
    const first = expectConnectError(client.createPayment(payment(key)));
    await entered;
    const second = client.createPayment(payment(key));
    await arrivals.until(2);
    gate.open();
    expect((await first).code).toBe(Code.Unavailable);
    expect((await second).payment?.paymentId).toBe(`pay_2_${server.port}`);
    expect(server.runs).toHaveLength(2);
    expect(server.runs.map((r) => [r.context?.attempt, r.context?.takeover])).toEqual([
      [1, false],
      [2, true],
    ]);
    expect(server.events.map((e) => [e.type, e.waitResult])).toEqual([
      ["claimed", undefined],
      ["interrupted", undefined],
      ["waited", "released"],
      ["takeover", undefined],
      ["completed", undefined],
    ]);
  });

  it("a duplicate in another process polls the store until the outcome is there", async () => {
    const gate = createGate();
    const clock = createManualClock();
    const a = await startGated(gate, { store: sharedStore(clock), clock });
    const observed = observedStore(sharedStore(clock), "get");
    const b = await startGated(createGate(), { store: observed.store, clock });
    const key = crypto.randomUUID();
    const first = a.client.createPayment(payment(key));
    await a.entered;
    const second = b.client.createPayment(payment(key));
    await observed.next(2);
    gate.open();
    expect(await second).toEqual(await first);
    expect(a.server.runs).toHaveLength(1);
    expect(b.server.runs).toHaveLength(0);
    expect(b.server.events.map((e) => [e.type, e.waitResult])).toEqual([
      ["waited", "outcome"],
      ["replayed", undefined],
    ]);
    expect(b.server.events[0]?.storeCalls?.map((c) => c.operation)).toContain("get");
  });

  it("refuses another payload under a key in flight, in this process or another", async () => {
    const gate = createGate();
    const clock = createManualClock();
    const a = await startGated(gate, { store: sharedStore(clock), clock });
    const b = await startGated(createGate(), { store: sharedStore(clock), clock });
    const key = crypto.randomUUID();
    const first = a.client.createPayment(payment(key, 100n));
    await a.entered;
    for (const client of [a.client, b.client]) {
      const error = await expectConnectError(client.createPayment(payment(key, 999n)));
      expect(findErrorReason(error)).toBe(ErrorReason.REQUEST_ID_REUSED);
    }
    gate.open();
    await first;
    expect(a.server.runs.length + b.server.runs.length).toBe(1);
  });
});

describe("taking over after a crash or a stall", () => {
  /** Claims a key as a process would that then died. */
  async function claimAsDeadProcess(store: IdempotencyStore, key: string, amountMinor = 100n) {
    const message = create(CreatePaymentRequestSchema, payment(key, amountMinor));
    const fingerprint = fingerprintRequest(
      CreatePaymentRequestSchema,
      message,
      CreatePaymentRequestSchema.field.requestId,
    );
    const claim = await store.claim({
      key: { scope: "", method, key },
      fingerprint,
      owner: "owner-of-a-dead-process",
      leaseMs: 30_000,
      graceMs: 2_000,
      expiresInMs: 86_400_000,
    });
    expect(claim.kind).toBe("claimed");
  }

  it("takes over a claim whose lease and grace expired, with a new owner token, attempt 2 and takeover: true", async () => {
    const server = await startIdempotencyTestServer({ interceptor: { maxWaitMs: 20 } });
    scratch.closeAfter(() => server.close());
    const client = paymentsClient(server);
    const key = crypto.randomUUID();
    await claimAsDeadProcess(server.store, key);

    // While the lease lasts, the key is in progress.
    expect(findErrorReason(await expectConnectError(client.createPayment(payment(key))))).toBe(
      ErrorReason.REQUEST_IN_PROGRESS,
    );
    expect(server.runs).toHaveLength(0);

    // At the end of the lease the claim still holds for the grace period (2 s by default).
    server.clock.advance(30_000);
    expect(findErrorReason(await expectConnectError(client.createPayment(payment(key))))).toBe(
      ErrorReason.REQUEST_IN_PROGRESS,
    );
    expect(server.runs).toHaveLength(0);
    server.clock.advance(2_000);
    const recovered = await client.createPayment(payment(key));
    expect(server.runs).toHaveLength(1);
    expect(server.runs[0]?.context).toMatchObject({ key, attempt: 2, takeover: true });
    const record = await server.store.get({ scope: "", method, key });
    expect(record).toMatchObject({ status: "completed", attempt: 2 });
    expect(record?.owner).not.toBe("owner-of-a-dead-process");
    expect(server.events.map((e) => e.type)).toContain("takeover");

    expect(await client.createPayment(payment(key))).toEqual(recovered);
    expect(server.runs).toHaveLength(1);
  });

  it("never takes over a dead claim for another payload", async () => {
    const server = await startIdempotencyTestServer();
    scratch.closeAfter(() => server.close());
    const key = crypto.randomUUID();
    await claimAsDeadProcess(server.store, key, 100n);
    server.clock.advance(60_000);
    const error = await expectConnectError(paymentsClient(server).createPayment(payment(key, 200n)));
    expect(findErrorReason(error)).toBe(ErrorReason.REQUEST_ID_REUSED);
    expect(server.runs).toHaveLength(0);
  });

  it("a slow but live handler keeps its claim: the lease is renewed while it runs", async () => {
    const gate = createGate();
    const clock = createManualClock();
    // Lease 1 s of the manual clock: renewed every 333 ms of real time.
    const observed = observedStore(sharedStore(clock), "renew");
    const a = await startGated(gate, {
      store: observed.store,
      clock,
      interceptor: { leaseMs: 1_000, leaseGraceMs: 500 },
    });
    const b = await startGated(createGate(), {
      store: sharedStore(clock),
      clock,
      interceptor: { leaseMs: 1_000, leaseGraceMs: 500, maxWaitMs: 20 },
    });
    const key = crypto.randomUUID();
    const first = a.client.createPayment(payment(key));
    await a.entered;
    const claimedAt = clock.now();
    for (let i = 0; i < 3; i++) {
      clock.advance(700);
      await observed.next();
    }
    // The first lease ended at claimedAt + 1,000 (+ 500 grace); renewals moved it along.
    const record = await a.server.store.get({ scope: "", method, key });
    expect(record?.leaseUntil).toBeGreaterThan(clock.now());
    expect(clock.now()).toBeGreaterThan(claimedAt + 1_500);
    // So a duplicate elsewhere waits instead of taking over.
    expect(findErrorReason(await expectConnectError(b.client.createPayment(payment(key))))).toBe(
      ErrorReason.REQUEST_IN_PROGRESS,
    );
    gate.open();
    expect(await b.client.createPayment(payment(key))).toEqual(await first);
    expect(a.server.runs.length + b.server.runs.length).toBe(1);
  });

  it("an execution that lost its claim never overwrites its successor's outcome, and its caller gets the successor's", async () => {
    const gate = createGate();
    const clock = createManualClock();
    const real = sharedStore(clock);
    // The first process cannot renew (say, its store connection hangs).
    const stalled: IdempotencyStore = {
      ...real,
      renew: () => Promise.reject(new Error("connection lost")),
      close: () => real.close(),
    };
    const leases = { leaseMs: 1_000, leaseGraceMs: 500 };
    const a = await startGated(gate, { store: stalled, clock, interceptor: leases });
    const open = createGate();
    open.open();
    const b = await startGated(open, { store: sharedStore(clock), clock, interceptor: leases });
    const key = crypto.randomUUID();
    const first = a.client.createPayment(payment(key));
    await a.entered;
    clock.advance(1_500);
    const successor = await b.client.createPayment(payment(key));
    expect(b.server.runs[0]?.context).toMatchObject({ attempt: 2, takeover: true });
    gate.open();
    // Its own result is not what the store holds: the caller gets the successor's, replayed.
    const late = await first;
    expect(late).toEqual(successor);
    expect(a.server.events.map((e) => e.type)).toContain("claim_lost");
    expect(a.server.events.find((e) => e.type === "claim_lost")).toMatchObject({ operation: "complete" });
    expect(a.server.events.at(-1)).toMatchObject({ type: "replayed" });
    // The store keeps the successor's outcome.
    expect(await b.client.createPayment(payment(key))).toEqual(successor);
    expect(await a.client.createPayment(payment(key))).toEqual(successor);
  });
});

describe("concurrency", () => {
  it("200 concurrent calls with one key: the handler runs once and all get the same response", async () => {
    const gate = createGate();
    const arrivals = createArrivalCounter();
    const { server, client } = await startGated(gate, { adapter: { interceptors: [arrivals.interceptor] } });
    const key = crypto.randomUUID();
    const calls = Array.from({ length: 200 }, () => retryWhileInProgress(() => client.createPayment(payment(key))));
    await arrivals.until(200);
    gate.open();
    const responses = await Promise.all(calls);
    expect(server.runs).toHaveLength(1);
    expect(new Set(responses.map((r) => r.payment?.paymentId))).toEqual(new Set([`pay_1_${server.port}`]));
  });

  it("200 concurrent calls with one key spread over two processes sharing a store: one execution", async () => {
    const gate = createGate();
    const clock = createManualClock();
    const a = await startGated(gate, { store: sharedStore(clock), clock });
    const b = await startGated(gate, { store: sharedStore(clock), clock });
    const key = crypto.randomUUID();
    const calls = Array.from({ length: 200 }, (_, i) =>
      retryWhileInProgress(() => (i % 2 === 0 ? a.client : b.client).createPayment(payment(key))),
    );
    await Promise.race([a.entered, b.entered]);
    gate.open();
    const responses = await Promise.all(calls);
    expect(a.server.runs.length + b.server.runs.length).toBe(1);
    expect(new Set(responses.map((r) => r.payment?.paymentId)).size).toBe(1);
  });
});
