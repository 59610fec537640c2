import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { FixtureService } from "../../gen/fixture/v1/fixture_pb.js";
import { IdempotencyService, OutcomeState } from "../../gen/idempotency/v1/idempotency_service_pb.js";
import { lookupOutcome } from "../../src/client/index.js";
import { ErrorReason } from "../../src/errors/error-reason.js";
import { findErrorReason } from "../../src/errors/idempotency-error.js";
import { createIdempotencyService, type IdempotencyStore, idempotencyContext } from "../../src/index.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { expectConnectError } from "../support/connect-assertions.js";
import { type IdempotencyTestServer, startIdempotencyTestServer } from "../support/idempotency-test-server.js";
import { useTestSchema } from "../support/postgres-database.js";

const schema = useTestSchema("idempotency_service");

const stores: readonly { name: string; open: () => Promise<IdempotencyStore> }[] = [
  { name: "sqlite", open: async () => createSqliteStore({ path: ":memory:", sweepIntervalMs: 0 }) },
  { name: "postgres", open: () => schema.openStore({ sweepIntervalMs: 0 }) },
];

// The tenant is whatever the caller's x-tenant header says: a stand-in for
// an auth interceptor's principal.
const tenantScope = (req: { header: Headers }) => req.header.get("x-tenant") ?? "";

describe.each(stores)("IdempotencyService.GetOutcome on $name", (storeKind) => {
  let server: IdempotencyTestServer;
  const gates = new Map<string, () => void>();

  beforeAll(async () => {
    server = await startIdempotencyTestServer({
      store: await storeKind.open(),
      interceptor: { scope: tenantScope },
      payments: {
        async createPayment(req, ctx) {
          const n = server.record("createPayment", req.requestId, ctx.values.get(idempotencyContext));
          switch (req.accountId) {
            case "slow":
              await new Promise<void>((resolve) => gates.set(req.requestId, resolve));
              break;
            case "declined":
              throw new ConnectError("card declined", Code.FailedPrecondition);
            case "flaky":
              // Indefinite: the handler may have acted.
              throw new ConnectError("bank timed out", Code.Unavailable);
          }
          return { payment: { paymentId: `pay_${n}`, accountId: req.accountId } };
        },
      },
      routes: (router, store) =>
        router.service(
          IdempotencyService,
          createIdempotencyService({ store, scope: tenantScope, services: [PaymentService, FixtureService] }),
        ),
    });
  });

  afterAll(async () => {
    for (const open of gates.values()) {
      open();
    }
    await server.close();
  });

  const transportFor = (tenant: string) =>
    createConnectTransport({
      baseUrl: server.baseUrl,
      httpVersion: "2",
      interceptors: [
        (next) => (req) => {
          req.header.set("x-tenant", tenant);
          return next(req);
        },
      ],
    });
  const pay = (tenant: string, requestId: string, accountId: string) =>
    createClient(PaymentService, transportFor(tenant)).createPayment({
      requestId,
      accountId,
      amountMinor: 1n,
      currency: "EUR",
    });
  const lookup = (tenant: string, requestId: string) =>
    lookupOutcome(transportFor(tenant), PaymentService.method.createPayment, requestId);

  it("answers completed with the stored response, decoded as the method's output", async () => {
    const requestId = crypto.randomUUID();
    const paid = await pay("acme", requestId, "acct_1");
    const outcome = await lookup("acme", requestId.toUpperCase());
    expect(outcome.state).toBe("completed");
    if (outcome.state === "completed") {
      expect(outcome.response).toEqual(paid);
      expect(outcome.attempt).toBe(1);
      expect(outcome.expiresAt?.getTime()).toBeGreaterThan(Date.now());
    }
  });

  it("never shows another tenant's record", async () => {
    const requestId = crypto.randomUUID();
    await pay("acme", requestId, "acct_1");
    expect(await lookup("globex", requestId)).toEqual({ state: "unknown" });
    expect(await lookup("", requestId)).toEqual({ state: "unknown" });
    expect((await lookup("acme", requestId)).state).toBe("completed");
  });

  it("answers failed with the stored error", async () => {
    const requestId = crypto.randomUUID();
    await expectConnectError(pay("acme", requestId, "declined"));
    const outcome = await lookup("acme", requestId);
    expect(outcome.state).toBe("failed");
    if (outcome.state === "failed") {
      expect([outcome.error.code, outcome.error.rawMessage]).toEqual([Code.FailedPrecondition, "card declined"]);
    }
  });

  it("answers in progress with the lease end, then completed", async () => {
    const requestId = crypto.randomUUID();
    const running = pay("acme", requestId, "slow");
    while (!gates.has(requestId)) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const outcome = await lookup("acme", requestId);
    expect(outcome.state).toBe("in_progress");
    if (outcome.state === "in_progress") {
      expect(outcome.leaseUntil?.getTime()).toBeGreaterThan(Date.now());
    }
    gates.get(requestId)?.();
    await running;
    expect((await lookup("acme", requestId)).state).toBe("completed");
  });

  it("answers interrupted after an indefinite error, and unknown for an ID never sent", async () => {
    const requestId = crypto.randomUUID();
    await expectConnectError(pay("acme", requestId, "flaky"));
    expect((await lookup("acme", requestId)).state).toBe("interrupted");
    expect(await lookup("acme", crypto.randomUUID())).toEqual({ state: "unknown" });
  });

  it("answers executed for DUPLICATE_MODE_REJECT, which keeps no response", async () => {
    const requestId = crypto.randomUUID();
    const made = await createClient(FixtureService, transportFor("acme")).reject({ requestId, text: "x" });
    const outcome = await lookupOutcome(transportFor("acme"), FixtureService.method.reject, requestId);
    expect(outcome).toMatchObject({ state: "executed", resourceName: made.name });
  });

  it("refuses a method it does not serve and a malformed request ID", async () => {
    const client = createClient(IdempotencyService, transportFor("acme"));
    const unknown = await expectConnectError(
      client.getOutcome({ method: "other.v1.S/M", requestId: crypto.randomUUID() }),
    );
    expect(unknown.code).toBe(Code.NotFound);
    const invalid = await expectConnectError(
      client.getOutcome({ method: "demo.v1.PaymentService/CreatePayment", requestId: "not-a-uuid" }),
    );
    expect([invalid.code, findErrorReason(invalid)]).toEqual([Code.InvalidArgument, ErrorReason.REQUEST_ID_INVALID]);
    const raw = await client.getOutcome({
      method: "demo.v1.PaymentService/CreatePayment",
      requestId: crypto.randomUUID(),
    });
    expect(raw.state).toBe(OutcomeState.UNKNOWN);
  });
});
