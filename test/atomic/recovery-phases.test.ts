import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ChargeResponseSchema } from "../../gen/demo/v1/bank_pb.js";
import {
  type CreatePaymentRequest,
  type CreatePaymentResponse,
  CreatePaymentResponseSchema,
  PaymentService,
} from "../../gen/demo/v1/payments_pb.js";
import { idempotencyContext, releaseOnError } from "../../src/index.js";
import { ErrorReason, findErrorReason } from "../../src/client/index.js";
import { atomicEffects } from "../../src/server/atomic-effects.js";
import { deriveRequestId } from "../../src/server/derived-key.js";
import { createSqliteStore, type SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { type IdempotencyTestServer, startIdempotencyTestServer } from "../support/idempotency-test-server.js";
import { type ManualClock, createManualClock } from "../support/manual-clock.js";

const method = "demo.v1.PaymentService/CreatePayment";
const requestId = "3f0c8d4e-5b7a-4c1e-9d2f-6a8b0c1d2e3f";
const request = { requestId, accountId: "acct-1", amountMinor: 100n, currency: "EUR" };
const leaseMs = 60_000;

type Handler = (req: CreatePaymentRequest, ctx: HandlerContext) => Promise<CreatePaymentResponse>;

let store: SqliteStore;
let clock: ManualClock;
const servers: IdempotencyTestServer[] = [];
let handler: Handler;

/**
 * A server of its own on the shared store, as another process would be: a
 * duplicate sent to it does not wait for an execution running in another
 * server, but takes the key over once the lease (and its grace) has run
 * out by the store's clock.
 */
async function startServer(): Promise<IdempotencyTestServer> {
  const server = await startIdempotencyTestServer({
    store,
    interceptor: { leaseMs: leaseMs },
    payments: { createPayment: (req, ctx) => handler(req, ctx) },
  });
  servers.push(server);
  return server;
}

function clientOf(server: IdempotencyTestServer) {
  return createClient(PaymentService, createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "2" }));
}

beforeEach(() => {
  clock = createManualClock();
  store = createSqliteStore({ path: ":memory:", sweepIntervalMs: 0, clock });
  store.database.exec("CREATE TABLE payments (payment_id TEXT PRIMARY KEY, charge_id TEXT NOT NULL)");
});

afterEach(async () => {
  // The servers share one store: close the HTTP servers, then the store once.
  for (const server of servers.splice(0)) {
    await server.close().catch(() => {});
  }
  await store.close();
});

describe("phase", () => {
  it("resumes a taken-over request at its first unfinished step", async () => {
    const stepRuns = { reserve: 0, charge: 0, notify: 0 };
    let release: () => void = () => {};
    const stalled = new Promise<void>((resolve) => (release = resolve));
    let reachedStall: () => void = () => {};
    const atStall = new Promise<void>((resolve) => (reachedStall = resolve));
    let executions = 0;
    handler = async (_req, ctx) => {
      const execution = ++executions;
      const effects = atomicEffects(ctx, store);
      const reservation = await effects.phase("reserve", async () => {
        stepRuns.reserve++;
        return { slot: `slot-${execution}`, seats: [1, 2] };
      });
      const charge = await effects.phase("charge", ChargeResponseSchema, async () => {
        stepRuns.charge++;
        return create(ChargeResponseSchema, { chargeId: `ch_${execution}` });
      });
      if (execution === 1) {
        // The first execution stalls here, as if its process had died.
        reachedStall();
        await stalled;
      }
      await effects.phase("notify", () => {
        stepRuns.notify++;
      });
      return effects.commit((db) => {
        db.prepare("INSERT INTO payments (payment_id, charge_id) VALUES (?, ?)").run(reservation.slot, charge.chargeId);
        return create(CreatePaymentResponseSchema, {
          payment: {
            paymentId: reservation.slot,
            chargeId: charge.chargeId,
            amountMinor: BigInt(reservation.seats.length),
          },
        });
      });
    };
    const first = await startServer();
    const second = await startServer();
    const stalledCall = clientOf(first).createPayment(request);
    await atStall;
    expect(stepRuns).toEqual({ reserve: 1, charge: 1, notify: 0 });

    // The lease and its grace (2 s by default) have run out: the second server takes over.
    clock.advance(leaseMs + 2_000);
    const resumed = await clientOf(second).createPayment(request);
    expect(second.events.map((event) => event.type)).toContain("takeover");
    // Recorded steps returned what the first execution recorded, without running.
    expect(stepRuns).toEqual({ reserve: 1, charge: 1, notify: 1 });
    expect(resumed).toEqual(
      create(CreatePaymentResponseSchema, { payment: { paymentId: "slot-1", chargeId: "ch_1", amountMinor: 2n } }),
    );

    // The stalled execution wakes up: it can no longer commit anything, and
    // its caller gets the stored outcome of the execution that took over.
    release();
    expect(await stalledCall).toEqual(resumed);
    expect(store.database.prepare("SELECT payment_id FROM payments").all()).toEqual([{ payment_id: "slot-1" }]);
    expect(stepRuns).toEqual({ reserve: 1, charge: 1, notify: 1 });
  });

  it("gives a step the same value on its first run as a resumed run gets", async () => {
    const seen: unknown[] = [];
    handler = async (_req, ctx) => {
      const effects = atomicEffects(ctx, store);
      seen.push(await effects.phase("sparse", () => ({ kept: 1, dropped: undefined }) as never));
      return create(CreatePaymentResponseSchema, {});
    };
    await clientOf(await startServer()).createPayment(request);
    // JSON has no undefined: the first run sees what a replay would decode.
    expect(seen).toEqual([{ kept: 1 }]);
    expect(Object.keys(seen[0] as object)).toEqual(["kept"]);
  });

  it("derives downstream keys from the canonical request ID", async () => {
    const keys: string[] = [];
    handler = async (_req, ctx) => {
      const effects = atomicEffects(ctx, store);
      keys.push(effects.derivedKey("charge"), effects.derivedKey("notify"));
      return create(CreatePaymentResponseSchema, {});
    };
    const client = clientOf(await startServer());
    await client.createPayment({ ...request, requestId: requestId.toUpperCase() });
    expect(keys).toEqual([
      deriveRequestId({ scope: "", method, key: requestId, name: "charge" }),
      deriveRequestId({ scope: "", method, key: requestId, name: "notify" }),
    ]);
  });

  it("keeps the steps of a key interrupted by an indefinite error: the retry takes over and charges once", async () => {
    let charges = 0;
    const attempts: (number | undefined)[] = [];
    handler = async (_req, ctx) => {
      attempts.push(ctx.values.get(idempotencyContext)?.attempt);
      const effects = atomicEffects(ctx, store);
      await effects.phase("charge", () => ++charges);
      if (attempts.length === 1) {
        throw new ConnectError("downstream busy", Code.Unavailable);
      }
      return create(CreatePaymentResponseSchema, {});
    };
    const client = clientOf(await startServer());
    await expect(client.createPayment(request)).rejects.toThrow(/downstream busy/);
    expect(await store.getPhase({ key: { scope: "", method, key: requestId }, name: "charge" })).toBeDefined();
    await client.createPayment(request);
    expect(charges).toBe(1);
    expect(attempts).toEqual([1, 2]);
  });

  it("forgets the steps of a released key: a retry runs them again", async () => {
    let charges = 0;
    let attempt = 0;
    handler = async (_req, ctx) => {
      const effects = atomicEffects(ctx, store);
      await effects.phase("charge", () => ++charges);
      if (++attempt === 1) {
        throw releaseOnError(new ConnectError("the bank refused before charging", Code.Unavailable));
      }
      return create(CreatePaymentResponseSchema, {});
    };
    const client = clientOf(await startServer());
    await expect(client.createPayment(request)).rejects.toThrow(/refused before charging/);
    expect(await store.getPhase({ key: { scope: "", method, key: requestId }, name: "charge" })).toBeUndefined();
    await client.createPayment(request);
    expect(charges).toBe(2);
  });

  it("refuses a step name used twice in one call", async () => {
    let refused: unknown;
    handler = async (_req, ctx) => {
      const effects = atomicEffects(ctx, store);
      await effects.phase("charge", () => 1);
      refused = await effects.phase("charge", () => 2).catch((error: unknown) => error);
      return create(CreatePaymentResponseSchema, {});
    };
    await clientOf(await startServer()).createPayment(request);
    expect(String(refused)).toMatch(/phase "charge" already ran in this call/);
  });

  it("lets the handler try a failed step again in the same call, and records only its success", async () => {
    let attempts = 0;
    handler = async (_req, ctx) => {
      const effects = atomicEffects(ctx, store);
      const step = () =>
        effects.phase("charge", () => {
          if (++attempts === 1) {
            throw new Error("bank busy");
          }
          return attempts;
        });
      const charged = await step().catch(step);
      return create(CreatePaymentResponseSchema, { payment: { paymentId: `pay_${charged}` } });
    };
    const response = await clientOf(await startServer()).createPayment(request);
    expect(response.payment?.paymentId).toBe("pay_2");
    expect(attempts).toBe(2);
  });

  it("just runs steps for a call without a request ID", async () => {
    let runs = 0;
    handler = async (_req, ctx) => {
      await atomicEffects(ctx, store).phase("charge", () => ++runs);
      return create(CreatePaymentResponseSchema, {});
    };
    const client = clientOf(await startServer());
    await client.createPayment({ ...request, requestId: "" });
    await client.createPayment({ ...request, requestId: "" });
    expect(runs).toBe(2);
  });

  it("fails with UNAVAILABLE and interrupts the key when the store cannot record a step", async () => {
    const failing: SqliteStore = {
      ...store,
      recordPhase: () => Promise.reject(new Error("disk I/O error")),
    };
    let runs = 0;
    const server = await startIdempotencyTestServer({
      store: failing,
      payments: {
        createPayment: async (_req, ctx) => {
          await atomicEffects(ctx, failing).phase("charge", () => ++runs);
          return create(CreatePaymentResponseSchema, {});
        },
      },
    });
    servers.push(server);
    const error = await clientOf(server)
      .createPayment(request)
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    expect(error?.code).toBe(Code.Unavailable);
    expect(findErrorReason(error!)).toBe(ErrorReason.STORE_UNAVAILABLE);
    // The step ran but is not recorded: the record stays, and a retry takes it over knowing so.
    expect((await store.get({ scope: "", method, key: requestId }))?.status).toBe("interrupted");
  });
});
