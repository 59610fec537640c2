import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { vi } from "vitest";
import { PaymentService, type CreatePaymentResponse } from "../../gen/demo/v1/payments_pb.js";
import { FixtureService } from "../../gen/fixture/v1/fixture_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { hashRecordKey } from "../../src/server/key-hash.js";
import type { IdempotencyStore } from "../../src/store/idempotency-store.js";
import type { StoreStats } from "../../src/store/idempotency-store-admin.js";
import { createGate } from "./call-gates.js";
import {
  type IdempotencyTestServer,
  startIdempotencyTestServer,
  testKeyHashSecret,
} from "./idempotency-test-server.js";
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
  /** A CreatePayment claim whose handler failed with an indefinite error: interrupted. */
  readonly interrupted: string;
  /** A CreatePayment claim still running (its handler waits for `finishSlowCall`). */
  readonly running: string;
}

/** The counts `stats` reports of a store `startFilledStoreServer` has just filled. */
export const filledStoreCounts = {
  inProgress: 1,
  interrupted: 1,
  completed: 7,
  expired: 1,
  byMethod: [
    { method: "demo.v1.PaymentService/CreatePayment", inProgress: 1, interrupted: 1, completed: 5, tombstoned: 0 },
    { method: "demo.v1.PaymentService/RefundPayment", inProgress: 0, interrupted: 0, completed: 1, tombstoned: 0 },
    { method: "fixture.v1.FixtureService/Opaque", inProgress: 0, interrupted: 0, completed: 1, tombstoned: 0 },
  ],
} satisfies Partial<StoreStats>;

/**
 * Moves the records of these request IDs `ms` into the past, as if they had
 * been written that long ago by the store's clock (every time column of
 * their rows shifts back).
 */
export type BackdateRecords = (keys: readonly string[], ms: number) => Promise<void>;

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
 * 9 records, 7 completed, 1 in progress and 1 interrupted, over 3 methods
 * and 3 scopes, one expired. The store times every record; `backdate` then
 * moves the old ones three hours back.
 */
export async function startFilledStoreServer(
  store: IdempotencyStore,
  backdate: BackdateRecords,
): Promise<FilledStoreServer> {
  const slow = createGate();
  const server: IdempotencyTestServer = await startIdempotencyTestServer({
    store,
    interceptor: {
      scope: (req) => req.header.get(tenantHeader) ?? "",
      // No tombstones, so that the backdated Opaque record is expired;
      // admin-cli-sqlite.test.ts shows tombstones on a store of its own.
      tombstoneRetentionMs: 0,
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
        throw new ConnectError(
          `payment ${req.paymentId} is already fully refunded`,
          Code.FailedPrecondition,
          undefined,
          [
            {
              desc: ErrorInfoSchema,
              value: create(ErrorInfoSchema, { reason: "ALREADY_REFUNDED", domain: "payments.example" }),
            },
          ],
        );
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
    interrupted: crypto.randomUUID(),
    running: crypto.randomUUID(),
  };
  const freshRequest = { requestId: keys.fresh, accountId: "acc_fresh", amountMinor: 1250n, currency: "EUR" };

  for (const requestId of keys.old) {
    await payments.createPayment({ requestId, accountId: "acc_old", amountMinor: 100n, currency: "EUR" });
  }
  await fixture.opaque({ key: keys.expired, text: "expires after a minute" });
  await backdate([...keys.old, keys.expired], 3 * hour);
  const freshResponse = await payments.createPayment(freshRequest);
  for (const scope of ["acme", "globex"]) {
    await payments.createPayment(
      { requestId: keys.shared, accountId: `acc_${scope}`, amountMinor: 300n, currency: "EUR" },
      { headers: { [tenantHeader]: scope } },
    );
  }
  await payments.refundPayment({ requestId: keys.refused, paymentId: "pay_1", amountMinor: 100n }).catch(() => {});
  // Straight through the store: what the interceptor does when a handler
  // fails with an error that leaves open whether it acted.
  const interruptedKey = { scope: "", method: "demo.v1.PaymentService/CreatePayment", key: keys.interrupted };
  const owner = crypto.randomUUID();
  const claim = {
    key: interruptedKey,
    fingerprint: "0".repeat(64),
    owner,
    leaseMs: 30_000,
    graceMs: 10_000,
    expiresInMs: 24 * hour,
  };
  if (
    (await store.claim(claim)).kind !== "claimed" ||
    !(await store.interrupt({ key: interruptedKey, owner, attempt: 1 }))
  ) {
    throw new Error("could not leave an interrupted record");
  }
  const slowCall = payments.createPayment({ requestId: keys.running, accountId: "slow", amountMinor: 1n });
  const runningHash = hashRecordKey(
    { scope: "", method: "demo.v1.PaymentService/CreatePayment", key: keys.running },
    testKeyHashSecret,
  );
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
