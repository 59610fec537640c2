import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { vi } from "vitest";
import { PaymentService, type CreatePaymentResponse } from "../../gen/demo/v1/payments_pb.js";
import { FixtureService } from "../../gen/fixture/v1/fixture_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { hashRecordKey } from "../../src/server/key-hash.js";
import type { IdempotencyStore } from "../../src/store/idempotency-store.js";
import type { PostgresStore } from "../../src/store/postgres/postgres-store.js";
import type { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import type { StoreStats } from "../../src/store/idempotency-store-admin.js";
import { createGate } from "./call-gates.js";
import { type IdempotencyTestServer, startIdempotencyTestServer, testKeyHashSecret } from "./idempotency-test-server.js";
import { createTestTransport } from "./test-transports.js";

/** The scope of a call, from this request header; absent means the default scope `""`. */
export const tenantHeader = "x-tenant";

/** A response header CreatePayment sets, `entry_<run>`, so that stored outcomes carry one. */
export const ledgerHeader = "x-ledger-entry";

const hour = 3_600_000;

/** The request IDs `startFilledStoreServer` used, by what their records hold. */
export interface FilledKeys {
  /** Two completed CreatePayment records created three hours ago. */
  readonly old: readonly [string, string];
  /** A completed CreatePayment record created now. */
  readonly fresh: string;
  /** One request ID completed in two scopes, `acme` and `globex`. */
  readonly shared: string;
  /** A RefundPayment whose stored outcome is a FAILED_PRECONDITION error with an ErrorInfo. */
  readonly refused: string;
  /** An Opaque record (60 s retention) created three hours ago: expired, not swept. */
  readonly expired: string;
  /** A CreatePayment claim still running (its handler waits for `finishSlowCall`). */
  readonly running: string;
}

/** The counts `stats` reports of a store `startFilledStoreServer` has just filled. */
export const filledStoreCounts = {
  inProgress: 1,
  interrupted: 0,
  completed: 7,
  expired: 1,
  byMethod: [
    { method: "demo.v1.PaymentService/CreatePayment", inProgress: 1, interrupted: 0, completed: 5 },
    { method: "demo.v1.PaymentService/RefundPayment", inProgress: 0, interrupted: 0, completed: 1 },
    { method: "fixture.v1.FixtureService/Opaque", inProgress: 0, interrupted: 0, completed: 1 },
  ],
} satisfies Partial<StoreStats>;

/** A server whose store holds one record of each kind the admin commands show. */
export interface FilledStoreServer {
  readonly server: IdempotencyTestServer;
  readonly keys: FilledKeys;
  /** The response of the `fresh` call. */
  readonly freshResponse: CreatePaymentResponse;
  /** Calls CreatePayment again with the `fresh` request and payload. */
  repeatFresh(): Promise<CreatePaymentResponse>;
  /** Lets the running call finish, and waits for it. */
  finishSlowCall(): Promise<void>;
}

/**
 * Starts the test server on `store` and fills the store through real calls:
 * 8 records, 7 completed and 1 in progress, over 3 methods and 3 scopes, one
 * expired. The old records are made three hours old afterwards, by moving
 * their times back in the table (stores take time from their own clock).
 */
export async function startFilledStoreServer(store: IdempotencyStore): Promise<FilledStoreServer> {
  const slow = createGate();
  const server: IdempotencyTestServer = await startIdempotencyTestServer({
    store,
    interceptor: {
      scope: (req) => req.header.get(tenantHeader) ?? "",
    },
    payments: {
      async createPayment(req, ctx) {
        if (req.accountId === "slow") {
          await slow.opened;
        }
        const n = server.record("createPayment", req.requestId, undefined);
        ctx.responseHeader.set(ledgerHeader, `entry_${n}`);
        return { payment: { paymentId: `pay_${n}`, accountId: req.accountId, amountMinor: req.amountMinor } };
      },
      refundPayment(req) {
        server.record("refundPayment", req.requestId, undefined);
        throw new ConnectError(`payment ${req.paymentId} is already fully refunded`, Code.FailedPrecondition, undefined, [
          { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason: "ALREADY_REFUNDED", domain: "payments.example" }) },
        ]);
      },
    },
  });
  const transport = createTestTransport(server.baseUrl, { protocol: "connect", binary: true, gzip: false });
  const payments = createClient(PaymentService, transport);
  const fixture = createClient(FixtureService, transport);
  const keys: FilledKeys = {
    old: [crypto.randomUUID(), crypto.randomUUID()],
    fresh: crypto.randomUUID(),
    shared: crypto.randomUUID(),
    refused: crypto.randomUUID(),
    expired: `order-${crypto.randomUUID().slice(0, 8)}`,
    running: crypto.randomUUID(),
  };
  const freshRequest = { requestId: keys.fresh, accountId: "acc_fresh", amountMinor: 1250n, currency: "EUR" };

  for (const requestId of keys.old) {
    await payments.createPayment({ requestId, accountId: "acc_old", amountMinor: 100n, currency: "EUR" });
  }
  await fixture.opaque({ key: keys.expired, text: "expires after a minute" });
  await ageRecords(store, [...keys.old, keys.expired], 3 * hour);
  const freshResponse = await payments.createPayment(freshRequest);
  for (const scope of ["acme", "globex"]) {
    await payments.createPayment(
      { requestId: keys.shared, accountId: `acc_${scope}`, amountMinor: 300n, currency: "EUR" },
      { headers: { [tenantHeader]: scope } },
    );
  }
  await payments.refundPayment({ requestId: keys.refused, paymentId: "pay_1", amountMinor: 100n }).catch(() => {});
  const slowCall = payments.createPayment({ requestId: keys.running, accountId: "slow", amountMinor: 1n });
  const runningHash = hashRecordKey({ scope: "", method: "demo.v1.PaymentService/CreatePayment", key: keys.running }, testKeyHashSecret);
  await vi.waitFor(() => {
    if (!server.events.some((event) => event.type === "claimed" && event.keyHash === runningHash)) {
      throw new Error("the slow call has not claimed its key yet");
    }
  });

  return {
    server,
    keys,
    freshResponse,
    repeatFresh: () => payments.createPayment(freshRequest),
    async finishSlowCall() {
      slow.open();
      await slowCall;
    },
  };
}

/**
 * Moves every time of the records with these request IDs back by `ms`, as
 * if they had been written that long ago by the store's clock.
 */
async function ageRecords(store: IdempotencyStore, requestIds: readonly string[], ms: number): Promise<void> {
  const shift = "created_at = created_at - $ms, updated_at = updated_at - $ms, lease_until = lease_until - $ms, expires_at = expires_at - $ms";
  if ("database" in store && "executor" in store) {
    const sqlite = store as unknown as SqliteStore;
    const update = sqlite.database.prepare(
      `UPDATE "${sqlite.table}" SET ${shift.replaceAll("$ms", "@ms")} WHERE key = @key`,
    );
    await sqlite.executor.run(() => {
      for (const key of requestIds) update.run({ ms, key });
    });
    return;
  }
  if ("pool" in store) {
    const postgres = store as unknown as PostgresStore;
    await postgres.pool.query(
      `UPDATE "${postgres.schema}"."${postgres.table}" SET ${shift.replaceAll("$ms", "$1::bigint")} WHERE key = ANY($2::text[])`,
      [ms, requestIds],
    );
    return;
  }
  throw new Error("ageRecords knows the SQLite and PostgreSQL stores only");
}
