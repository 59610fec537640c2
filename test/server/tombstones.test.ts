import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { FixtureService } from "../../gen/fixture/v1/fixture_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { IdempotencyService } from "../../gen/idempotency/v1/idempotency_service_pb.js";
import { lookupOutcome } from "../../src/client/index.js";
import { ErrorReason } from "../../src/errors/error-reason.js";
import { createIdempotencyService, type IdempotencyStore } from "../../src/index.js";
import { createPostgresStore } from "../../src/store/postgres/postgres-store.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { captureMetadata, describeError, expectConnectError } from "../support/connect-assertions.js";
import { type IdempotencyTestServer, startIdempotencyTestServer } from "../support/idempotency-test-server.js";
import { createManualClock, type ManualClock } from "../support/manual-clock.js";
import { useTestSchema } from "../support/postgres-database.js";
import { useTestDatabaseClock } from "../support/postgres-test-clock.js";

const schema = useTestSchema("tombstones");
const databaseClock = useTestDatabaseClock("tombstoneclock");

const minute = 60_000;
const retention = 10 * minute;
const tombstoneRetention = 60 * minute;
// Past a boundary by the store's clock. PostgreSQL's runs on by itself
// between a travel and the next statement, so every step keeps a margin.
const margin = 5_000;

/** A store, and how to move its clock: a manual clock for SQLite, the database's for PostgreSQL. */
interface StoreUnderTest {
  readonly store: IdempotencyStore;
  readonly clock: ManualClock;
  travel(ms: number): Promise<void>;
  cleanup(): Promise<void>;
}

const stores: readonly { name: string; open: () => Promise<StoreUnderTest> }[] = [
  {
    name: "sqlite",
    open: async () => {
      const clock = createManualClock();
      const store = createSqliteStore({ path: ":memory:", sweepIntervalMs: 0, clock });
      return {
        store,
        clock,
        travel: async (ms) => clock.advance(ms),
        cleanup: async () => {},
      };
    },
  },
  {
    name: "postgres",
    open: async () => {
      await databaseClock.reset();
      const pool: pg.Pool = databaseClock.pool();
      const store = await createPostgresStore({
        pool,
        schema: schema.name,
        table: schema.nextTable(),
        sweepIntervalMs: 0,
      });
      return {
        store,
        // Unused by a PostgreSQL store, which reads the database's clock.
        clock: createManualClock(),
        travel: (ms) => databaseClock.travel(ms),
        cleanup: () => pool.end(),
      };
    },
  },
];

function errorInfo(error: ConnectError): Record<string, string> {
  return error.findDetails(ErrorInfoSchema)[0]?.metadata ?? {};
}

describe.each(stores)("tombstones on $name", (storeKind) => {
  let subject: StoreUnderTest;
  let server: IdempotencyTestServer;

  beforeAll(async () => {
    subject = await storeKind.open();
    server = await startIdempotencyTestServer({
      store: subject.store,
      clock: subject.clock,
      interceptor: { retentionMs: retention, tombstoneRetentionMs: tombstoneRetention },
      payments: {
        createPayment(req) {
          const n = server.record("createPayment", req.requestId, undefined);
          if (req.accountId === "declined") {
            throw new ConnectError("card declined", Code.FailedPrecondition);
          }
          return { payment: { paymentId: `pay_${n}`, accountId: req.accountId } };
        },
      },
      routes: (router, store) =>
        router.service(
          IdempotencyService,
          createIdempotencyService({ store, services: [PaymentService, FixtureService] }),
        ),
    });
  });

  afterAll(async () => {
    await server?.close();
    await subject?.cleanup();
  });

  const transport = () => createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "2" });
  const payments = () => createClient(PaymentService, transport());
  const pay = (requestId: string, accountId = "acct_1", amountMinor = 100n) =>
    payments().createPayment({ requestId, accountId, amountMinor, currency: "EUR" });
  const runsOf = (requestId: string) => server.runs.filter((run) => run.requestId === requestId).length;
  const recordOf = (requestId: string) =>
    server.store.get({ scope: "", method: "demo.v1.PaymentService/CreatePayment", key: requestId });

  it("replays within the replay window, then refuses the same payload with REQUEST_ID_EXPIRED without running it", async () => {
    const requestId = crypto.randomUUID();
    expect((await pay(requestId)).payment?.paymentId).toMatch(/^pay_/);
    const record = await recordOf(requestId);
    expect(record).toMatchObject({ status: "completed", outcomeCode: 0 });
    expect(record?.replayUntil).toBe((record?.updatedAt ?? 0) + retention);
    expect(record?.expiresAt).toBe((record?.updatedAt ?? 0) + retention + tombstoneRetention);
    // `idempotency-expires` is the end of the replay window, not of the tombstone.
    const again = captureMetadata();
    await payments().createPayment(
      { requestId, accountId: "acct_1", amountMinor: 100n, currency: "EUR" },
      again.options,
    );
    expect(again.seen.header.get("idempotency-expires")).toBe(new Date(record?.replayUntil ?? 0).toISOString());

    await subject.travel(retention + margin);
    const error = await expectConnectError(pay(requestId));
    expect(describeError(error)).toMatchObject({
      code: Code.FailedPrecondition,
      reason: ErrorReason.REQUEST_ID_EXPIRED,
    });
    expect(errorInfo(error)).toMatchObject({
      completed_at: new Date(record?.updatedAt ?? 0).toISOString(),
      original_code: "0",
      first_executed_at: new Date(record?.createdAt ?? 0).toISOString(),
    });
    expect(runsOf(requestId)).toBe(1);
    expect(server.events.at(-1)?.type).toBe("tombstoned");

    // Another payload under the same ID is a reuse, tombstone or not.
    const reused = await expectConnectError(pay(requestId, "acct_1", 999n));
    expect(describeError(reused)).toMatchObject({
      code: Code.FailedPrecondition,
      reason: ErrorReason.REQUEST_ID_REUSED,
    });
    expect(runsOf(requestId)).toBe(1);
  });

  it("keeps refusing once the sweeper dropped the body, and runs the call again once the tombstone expired", async () => {
    const requestId = crypto.randomUUID();
    await pay(requestId);
    const record = await recordOf(requestId);
    await subject.travel(retention + margin);
    // The first stage drops the body: nothing is deleted yet.
    expect(await server.store.sweep({ limit: 1_000 })).toBe(0);
    const tombstone = await recordOf(requestId);
    expect(tombstone).toMatchObject({ status: "tombstoned", outcome: undefined, updatedAt: record?.updatedAt });
    const error = await expectConnectError(pay(requestId));
    expect(describeError(error)).toMatchObject({ reason: ErrorReason.REQUEST_ID_EXPIRED });
    expect(runsOf(requestId)).toBe(1);

    await subject.travel(tombstoneRetention);
    expect((await pay(requestId)).payment?.paymentId).toMatch(/^pay_/);
    expect(runsOf(requestId)).toBe(2);
    // A fresh record, with a replay window of its own.
    expect(await recordOf(requestId)).toMatchObject({ status: "completed", attempt: 1 });
  });

  it("a tombstone of a stored error names its code", async () => {
    const requestId = crypto.randomUUID();
    const declined = await expectConnectError(pay(requestId, "declined"));
    expect(declined.code).toBe(Code.FailedPrecondition);
    await subject.travel(retention + margin);
    await server.store.sweep({ limit: 1_000 });
    const error = await expectConnectError(pay(requestId, "declined"));
    expect(describeError(error)).toMatchObject({ reason: ErrorReason.REQUEST_ID_EXPIRED });
    expect(errorInfo(error).original_code).toBe(String(Code.FailedPrecondition));
    expect(runsOf(requestId)).toBe(1);
  });

  it("GetOutcome answers TOMBSTONED with the completion time and the code, swept or not", async () => {
    const requestId = crypto.randomUUID();
    await pay(requestId);
    const record = await recordOf(requestId);
    expect(await lookupOutcome(transport(), PaymentService.method.createPayment, requestId)).toMatchObject({
      state: "completed",
    });
    await subject.travel(retention + margin);
    const expected = {
      state: "tombstoned",
      completedAt: new Date(record?.updatedAt ?? 0),
      originalCode: 0,
      firstExecutedAt: new Date(record?.createdAt ?? 0),
      expiresAt: new Date(record?.expiresAt ?? 0),
    };
    expect(await lookupOutcome(transport(), PaymentService.method.createPayment, requestId)).toMatchObject(expected);
    await server.store.sweep({ limit: 1_000 });
    expect(await lookupOutcome(transport(), PaymentService.method.createPayment, requestId)).toMatchObject(expected);
    await subject.travel(tombstoneRetention);
    expect(await lookupOutcome(transport(), PaymentService.method.createPayment, requestId)).toEqual({
      state: "unknown",
    });
  });
});

describe("tombstone periods", () => {
  it("0 keeps no tombstone; a method's tombstone_retention overrides the option", async () => {
    const server = await startIdempotencyTestServer({
      interceptor: { retentionMs: retention, tombstoneRetentionMs: 0 },
    });
    try {
      const payments = createClient(
        PaymentService,
        createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "2" }),
      );
      const fixture = createClient(
        FixtureService,
        createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "2" }),
      );
      const requestId = crypto.randomUUID();
      await payments.createPayment({ requestId, accountId: "a", amountMinor: 1n, currency: "EUR" });
      // fixture.v1.FixtureService/Stamped keeps a tombstone for an hour.
      const stampedId = crypto.randomUUID();
      await fixture.stamped({ requestId: stampedId, text: "t" });
      const stamped = await server.store.get({
        scope: "",
        method: "fixture.v1.FixtureService/Stamped",
        key: stampedId,
      });
      expect(stamped?.expiresAt).toBe((stamped?.updatedAt ?? 0) + retention + 3_600_000);

      server.clock.advance(retention);
      // No tombstone: the key is free, and the call runs again.
      await payments.createPayment({ requestId, accountId: "a", amountMinor: 1n, currency: "EUR" });
      expect(server.runs.filter((run) => run.requestId === requestId)).toHaveLength(2);
      const error = await expectConnectError(fixture.stamped({ requestId: stampedId, text: "t" }));
      expect(describeError(error)).toMatchObject({ reason: ErrorReason.REQUEST_ID_EXPIRED });
      server.clock.advance(3_600_000);
      expect((await fixture.stamped({ requestId: stampedId, text: "t" })).executions).toBeGreaterThan(0);
    } finally {
      await server.close();
    }
  });

  it("a REJECT-mode method's tombstone refuses as REQUEST_ID_EXPIRED too, after the default 24 h", async () => {
    const server = await startIdempotencyTestServer();
    try {
      const fixture = createClient(
        FixtureService,
        createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "2" }),
      );
      const requestId = crypto.randomUUID();
      await fixture.reject({ requestId, text: "t" });
      server.clock.advance(24 * 60 * minute - 1);
      const duplicate = await expectConnectError(fixture.reject({ requestId, text: "t" }));
      expect(describeError(duplicate)).toMatchObject({
        code: Code.AlreadyExists,
        reason: ErrorReason.REQUEST_ID_ALREADY_EXECUTED,
      });
      server.clock.advance(1);
      const expired = await expectConnectError(fixture.reject({ requestId, text: "t" }));
      expect(describeError(expired)).toMatchObject({
        code: Code.FailedPrecondition,
        reason: ErrorReason.REQUEST_ID_EXPIRED,
      });
      expect(server.runs.filter((run) => run.requestId === requestId)).toHaveLength(1);
      // The default tombstone period: 30 days.
      server.clock.advance(30 * 24 * 60 * minute);
      await fixture.reject({ requestId, text: "t" });
      expect(server.runs.filter((run) => run.requestId === requestId)).toHaveLength(2);
    } finally {
      await server.close();
    }
  });

  it("refuses a negative or non-finite tombstoneRetentionMs at construction", async () => {
    for (const tombstoneRetention of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(
        startIdempotencyTestServer({ interceptor: { tombstoneRetentionMs: tombstoneRetention } }),
      ).rejects.toThrow(/tombstoneRetentionMs must be zero or a positive number of milliseconds/);
    }
  });
});
