import { create, fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { Database } from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type CreatePaymentRequest,
  type CreatePaymentResponse,
  CreatePaymentResponseSchema,
  PaymentService,
} from "../../gen/demo/v1/payments_pb.js";
import { StoredOutcomeSchema } from "../../gen/idempotency/v1/stored_outcome_pb.js";
import { type IdempotencyInterceptorOptions, releaseOnError, setExecutedResourceName } from "../../src/index.js";
import { ErrorReason, findErrorReason, replayedHeader } from "../../src/client/index.js";
import { atomicEffects } from "../../src/server/atomic-effects.js";
import { createSqliteStore, type SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { type IdempotencyTestServer, startIdempotencyTestServer } from "../support/idempotency-test-server.js";
import { type ManualClock, createManualClock } from "../support/manual-clock.js";
import { createTestTransport, transportVariants } from "../support/test-transports.js";

const method = "demo.v1.PaymentService/CreatePayment";
const requestId = "3f0c8d4e-5b7a-4c1e-9d2f-6a8b0c1d2e3f";

type Handler = (req: CreatePaymentRequest, ctx: HandlerContext) => Promise<CreatePaymentResponse>;

let store: SqliteStore;
let clock: ManualClock;
let server: IdempotencyTestServer;
let handler: Handler;
let runs: number;

function paymentResponse(paymentId: string): CreatePaymentResponse {
  return create(CreatePaymentResponseSchema, { payment: { paymentId, amountMinor: 100n, currency: "EUR" } });
}

function insertPayment(db: Database, paymentId: string): void {
  db.prepare("INSERT INTO payments (payment_id, request_id) VALUES (?, ?)").run(paymentId, requestId);
}

function countPayments(): number {
  return (store.database.prepare("SELECT count(*) AS n FROM payments").get() as { n: number }).n;
}

async function start(interceptor: Partial<IdempotencyInterceptorOptions> = {}) {
  server = await startIdempotencyTestServer({
    store,
    interceptor,
    payments: {
      createPayment: (req, ctx) => {
        runs++;
        return handler(req, ctx);
      },
    },
  });
}

function client() {
  return createClient(PaymentService, createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "2" }));
}

const request = { requestId, accountId: "acct-1", amountMinor: 100n, currency: "EUR" };

beforeEach(() => {
  clock = createManualClock();
  store = createSqliteStore({ path: ":memory:", sweepIntervalMs: 0, clock });
  store.database.exec("CREATE TABLE payments (payment_id TEXT PRIMARY KEY, request_id TEXT NOT NULL)");
  runs = 0;
});

afterEach(async () => {
  await server?.close();
});

describe("commit", () => {
  beforeEach(() => start());

  it("rolls back the handler's writes and interrupts the key when fn throws, so a retry runs again as attempt 2", async () => {
    handler = async (_req, ctx) =>
      atomicEffects(ctx, store).commit((db) => {
        insertPayment(db, `pay_${runs}`);
        if (runs === 1) {
          // A stored code: without commit, this error would be replayed.
          throw new ConnectError("ledger rejected the payment", Code.Internal);
        }
        return paymentResponse(`pay_${runs}`);
      });
    const failed = await client()
      .createPayment(request)
      .then(
        () => undefined,
        (error: unknown) => ConnectError.from(error),
      );
    expect(failed?.code).toBe(Code.Internal);
    expect(failed?.rawMessage).toBe("ledger rejected the payment");
    expect(countPayments()).toBe(0);
    expect((await store.get({ scope: "", method, key: requestId }))?.status).toBe("interrupted");
    expect(server.events.map((event) => event.type)).toEqual(["claimed", "interrupted"]);

    const retried = await client().createPayment(request);
    expect(runs).toBe(2);
    expect(server.events.map((event) => event.type)).toContain("takeover");
    expect(retried).toEqual(paymentResponse("pay_2"));
    expect(countPayments()).toBe(1);
    expect((await store.get({ scope: "", method, key: requestId }))?.status).toBe("completed");
  });

  it("interrupts the key when fn throws something that is not an Error", async () => {
    handler = async (_req, ctx) =>
      atomicEffects(ctx, store).commit((db) => {
        insertPayment(db, "pay_1");
        throw "a string";
      });
    await expect(client().createPayment(request)).rejects.toThrow();
    expect(countPayments()).toBe(0);
    expect((await store.get({ scope: "", method, key: requestId }))?.status).toBe("interrupted");
  });

  it("releases the key when fn throws an error marked with releaseOnError, so a retry runs afresh", async () => {
    handler = async (_req, ctx) =>
      atomicEffects(ctx, store).commit((db) => {
        insertPayment(db, "pay_1");
        throw releaseOnError(new ConnectError("nothing happened", Code.FailedPrecondition));
      });
    await expect(client().createPayment(request)).rejects.toThrow("nothing happened");
    expect(countPayments()).toBe(0);
    expect(await store.get({ scope: "", method, key: requestId })).toBeUndefined();
    expect(server.events.map((event) => event.type)).toEqual(["claimed", "released"]);
  });

  it("completes the key once, in the commit, and answers exactly what was committed", async () => {
    handler = async (_req, ctx) => {
      ctx.responseHeader.set("x-before-commit", "kept");
      ctx.responseTrailer.set("x-trailer", "kept too");
      const committed = await atomicEffects(ctx, store).commit((db) => {
        insertPayment(db, "pay_committed");
        return paymentResponse("pay_committed");
      });
      expect(committed).toEqual(paymentResponse("pay_committed"));
      // Neither changes what the client receives: the key already holds the committed answer.
      ctx.responseHeader.set("x-after-commit", "dropped");
      return paymentResponse("pay_other");
    };
    const first = await client().createPayment(request, {
      onHeader: (header) => {
        expect(header.get("x-before-commit")).toBe("kept");
        expect(header.get("x-after-commit")).toBeNull();
        expect(header.get(replayedHeader)).toBeNull();
      },
      onTrailer: (trailer) => expect(trailer.get("x-trailer")).toBe("kept too"),
    });
    expect(first).toEqual(paymentResponse("pay_committed"));
    expect(server.events.filter((event) => event.type === "completed")).toHaveLength(1);

    const record = await store.get({ scope: "", method, key: requestId });
    const outcome = fromBinary(StoredOutcomeSchema, record!.outcome!);
    expect(outcome.result.case).toBe("response");
    expect(fromBinary(CreatePaymentResponseSchema, outcome.result.value as Uint8Array)).toEqual(
      paymentResponse("pay_committed"),
    );
    expect(outcome.header.map((h) => h.name)).toEqual(["x-before-commit"]);

    let replayHeader: Headers | undefined;
    const replay = await client().createPayment(request, { onHeader: (header) => (replayHeader = header) });
    expect(replay).toEqual(first);
    expect(replayHeader?.get("x-before-commit")).toBe("kept");
    expect(replayHeader?.get(replayedHeader)).toBe("true");
    expect(runs).toBe(1);
    expect(countPayments()).toBe(1);
  });

  it("answers the committed response even when the handler throws after commit", async () => {
    handler = async (_req, ctx) => {
      await atomicEffects(ctx, store).commit((db) => {
        insertPayment(db, "pay_1");
        return paymentResponse("pay_1");
      });
      ctx.responseHeader.set("x-after-commit", "dropped");
      throw new ConnectError("too late to fail", Code.Unavailable);
    };
    let header: Headers | undefined;
    expect(await client().createPayment(request, { onHeader: (h) => (header = h) })).toEqual(paymentResponse("pay_1"));
    expect(header?.get("x-after-commit")).toBeNull();
    expect((await store.get({ scope: "", method, key: requestId }))?.status).toBe("completed");
    expect(await client().createPayment(request)).toEqual(paymentResponse("pay_1"));
    expect(runs).toBe(1);
  });

  it("writes nothing when another execution took the key over, and answers ABORTED", async () => {
    let proceed: () => void = () => {};
    const gate = new Promise<void>((resolve) => (proceed = resolve));
    let started: () => void = () => {};
    const running = new Promise<void>((resolve) => (started = resolve));
    handler = async (_req, ctx) => {
      started();
      await gate;
      return atomicEffects(ctx, store).commit((db) => {
        insertPayment(db, "pay_late");
        return paymentResponse("pay_late");
      });
    };
    const call = client()
      .createPayment(request)
      .then(
        () => undefined,
        (error: unknown) => ConnectError.from(error),
      );
    await running;
    // The lease ran out (the process stalled) and a retry elsewhere took over.
    const record = await store.get({ scope: "", method, key: requestId });
    clock.advance(32_000);
    const takeover = await store.claim({
      key: { scope: "", method, key: requestId },
      fingerprint: record!.fingerprint,
      owner: "successor",
      leaseMs: 30_000,
      graceMs: 2_000,
      expiresInMs: 86_400_000,
    });
    expect(takeover.kind === "claimed" && takeover.replaced).toBe("takeover");
    proceed();
    const error = await call;
    expect(error?.code).toBe(Code.Aborted);
    expect(findErrorReason(error!)).toBe(ErrorReason.REQUEST_IN_PROGRESS);
    expect(countPayments()).toBe(0);
    const after = await store.get({ scope: "", method, key: requestId });
    expect(after?.owner).toBe("successor");
    expect(after?.status).toBe("in_progress");
  });

  it("refuses an async fn on the SQLite store at run time too, writing nothing", async () => {
    handler = async (_req, ctx) =>
      atomicEffects(ctx, store).commit((async (db: Database) => {
        insertPayment(db, "pay_1");
        return paymentResponse("pay_1");
      }) as never);
    await expect(client().createPayment(request)).rejects.toThrow();
    expect(countPayments()).toBe(0);
    expect((await store.get({ scope: "", method, key: requestId }))?.status).toBe("interrupted");
  });

  it("refuses a response of another type, writing nothing", async () => {
    handler = async (_req, ctx) =>
      atomicEffects(ctx, store).commit(((db: Database) => {
        insertPayment(db, "pay_1");
        return { payment: { paymentId: "pay_1" } };
      }) as never);
    await expect(client().createPayment(request)).rejects.toThrow();
    expect(countPayments()).toBe(0);
  });

  it("allows one commit per call", async () => {
    let second: unknown;
    handler = async (_req, ctx) => {
      const effects = atomicEffects(ctx, store);
      const response = await effects.commit(() => paymentResponse("pay_1"));
      second = await effects.commit(() => paymentResponse("pay_2")).catch((error: unknown) => error);
      return response;
    };
    expect(await client().createPayment(request)).toEqual(paymentResponse("pay_1"));
    expect(String(second)).toMatch(/commit was already called/);
  });

  it("gives a handler that asks again the same effects, and every call effects of its own", async () => {
    const seen: ReturnType<typeof atomicEffects<Database, "sync">>[] = [];
    const refusals: unknown[] = [];
    const other = createSqliteStore({ path: ":memory:", sweepIntervalMs: 0 });
    handler = async (_req, ctx) => {
      const first = atomicEffects(ctx, store);
      seen.push(first, atomicEffects(ctx, store));
      const response = await first.commit((db) => {
        insertPayment(db, `pay_${runs}`);
        return paymentResponse(`pay_${runs}`);
      });
      // The state is the call's: the second handle sees the commit of the first.
      refusals.push(
        await atomicEffects(ctx, store)
          .commit(() => response)
          .catch((error: unknown) => error),
      );
      try {
        atomicEffects(ctx, other);
      } catch (error) {
        refusals.push(error);
      }
      return response;
    };
    await client().createPayment(request);
    await client().createPayment({ ...request, requestId: "b7e2a1c4-0d3f-4e5a-8b6c-9d0e1f2a3b4c" });
    await other.close();
    expect(seen).toHaveLength(4);
    expect(seen[1]).toBe(seen[0]);
    expect(seen[3]).toBe(seen[2]);
    expect(seen[2]).not.toBe(seen[0]);
    expect(refusals.map(String)).toEqual([
      expect.stringMatching(/commit was already called/),
      expect.stringMatching(/called with two different stores in one call/),
      expect.stringMatching(/commit was already called/),
      expect.stringMatching(/called with two different stores in one call/),
    ]);
    expect(countPayments()).toBe(2);
  });

  it("refuses a store that is not the interceptor's", async () => {
    const other = createSqliteStore({ path: ":memory:", sweepIntervalMs: 0 });
    let refused: unknown;
    handler = async (_req, ctx) => {
      try {
        atomicEffects(ctx, other);
      } catch (error) {
        refused = error;
      }
      return paymentResponse("pay_1");
    };
    await client().createPayment(request);
    await other.close();
    expect(String(refused)).toMatch(/not the idempotency interceptor's store/);
  });

  it("runs fn in a plain transaction for a call without a request ID", async () => {
    const keys: string[] = [];
    handler = async (_req, ctx) => {
      const effects = atomicEffects(ctx, store);
      keys.push(effects.derivedKey("charge"), effects.derivedKey("charge"), effects.derivedKey("refund"));
      return effects.commit((db) => {
        insertPayment(db, `pay_${runs}`);
        return paymentResponse(`pay_${runs}`);
      });
    };
    expect(await client().createPayment({ ...request, requestId: "" })).toEqual(paymentResponse("pay_1"));
    expect(await client().createPayment({ ...request, requestId: "" })).toEqual(paymentResponse("pay_2"));
    expect(countPayments()).toBe(2);
    expect(await store.get({ scope: "", method, key: "" })).toBeUndefined();
    // Random v4 keys, stable per name within a call only: the call itself is not deduplicated.
    expect(keys[0]).toBe(keys[1]);
    expect(new Set(keys).size).toBe(4);
    for (const key of keys) {
      expect(key).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
  });

  it("answers the committed response on every protocol, codec and compression", async () => {
    handler = async (req, ctx) => {
      ctx.responseHeader.set("x-handler", req.accountId);
      return atomicEffects(ctx, store).commit((db) => {
        insertPayment(db, req.accountId);
        return paymentResponse(req.accountId);
      });
    };
    for (const [i, variant] of transportVariants.entries()) {
      const variantClient = createClient(PaymentService, createTestTransport(server.baseUrl, variant));
      const id = `3f0c8d4e-5b7a-4c1e-9d2f-${String(i).padStart(12, "0")}`;
      let header: Headers | undefined;
      const response = await variantClient.createPayment(
        { ...request, requestId: id, accountId: `acct-${i}` },
        { onHeader: (h) => (header = h) },
      );
      expect(response, variant.name).toEqual(paymentResponse(`acct-${i}`));
      expect(header?.get("x-handler"), variant.name).toBe(`acct-${i}`);
    }
    expect(countPayments()).toBe(transportVariants.length);
  });
});

describe("commit with a response larger than the store keeps", () => {
  beforeEach(() => start({ maxStoredBytes: 64 }));

  it("answers the response, commits the writes and stores RESPONSE_TOO_LARGE for retries", async () => {
    const big = create(CreatePaymentResponseSchema, {
      payment: { paymentId: "pay_1", metadata: { note: "x".repeat(200) } },
    });
    handler = async (_req, ctx) =>
      atomicEffects(ctx, store).commit((db) => {
        insertPayment(db, "pay_1");
        return big;
      });
    expect(await client().createPayment(request)).toEqual(big);
    expect(countPayments()).toBe(1);
    const retry = await client()
      .createPayment(request)
      .then(
        () => undefined,
        (error: unknown) => ConnectError.from(error),
      );
    expect(retry?.code).toBe(Code.FailedPrecondition);
    expect(findErrorReason(retry!)).toBe(ErrorReason.RESPONSE_TOO_LARGE);
    expect(runs).toBe(1);
  });
});

describe("commit in DUPLICATE_MODE_REJECT", () => {
  beforeEach(() => start({ onDuplicate: "reject" }));

  it("stores only that the call ran and the resource name; the caller gets the committed response", async () => {
    handler = async (_req, ctx) => {
      setExecutedResourceName(ctx, "payments/pay_1");
      return atomicEffects(ctx, store).commit((db) => {
        insertPayment(db, "pay_1");
        return paymentResponse("pay_1");
      });
    };
    let header = new Headers();
    expect(await client().createPayment(request, { onHeader: (h) => (header = h) })).toEqual(paymentResponse("pay_1"));
    expect(header.get("idempotency-expires")).toMatch(/Z$/);
    const stored = await store.get({ scope: "", method, key: requestId });
    expect(fromBinary(StoredOutcomeSchema, stored?.outcome ?? new Uint8Array()).result).toMatchObject({
      case: "executed",
      value: { resourceName: "payments/pay_1" },
    });
    const duplicate = await client()
      .createPayment(request)
      .then(
        () => undefined,
        (error: unknown) => ConnectError.from(error),
      );
    expect([duplicate?.code, duplicate && findErrorReason(duplicate)]).toEqual([
      Code.AlreadyExists,
      ErrorReason.REQUEST_ID_ALREADY_EXECUTED,
    ]);
    expect(runs).toBe(1);
    expect(countPayments()).toBe(1);
  });
});
