// A client that goes away while the handler runs (its AbortSignal, or its
// deadline) must never leave a stored transport error behind, and never make
// the retry with the same ID act twice: a handler error while the call's
// signal is aborted interrupts the record, so the retry takes over at once.
// A handler that finishes after the client left stores its outcome, and the
// retry replays it.
//
// connect-node's client resets the HTTP/2 stream when its own deadline timer
// fires, so the server sees either its own DeadlineExceeded or an Internal
// "http/2 stream closed" first: a race, run 20 times per protocol here. The
// lease is the default 30 s; every retry must answer within a few seconds.
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, type Interceptor, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { CreatePaymentResponseSchema, PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { atomicEffects, releaseOnError, storeOnError } from "../../src/index.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import {
  type FaultRun,
  type FaultServer,
  answerOf,
  describeOutcome,
  startFaultServer,
} from "../support/fault-test-server.js";
import { usePerTestScratch } from "../support/per-test-scratch.js";
import { useTestSchema } from "../support/postgres-database.js";

const scratch = usePerTestScratch("client-abort-");
const postgres = useTestSchema("faults_abort");

const protocols = ["connect", "grpc"] as const;
/** The stores: a SQLite file, or the local PostgreSQL (own schema). */
const storeKinds = ["sqlite", "postgres"] as const;
type StoreKind = (typeof storeKinds)[number];
const trials = 20;
const noLeaseWaitMs = 3_000;

const newRequest = () => ({ requestId: crypto.randomUUID(), accountId: "acct_1", amountMinor: 1000n });

/** A server whose first execution of each request ID charges (in a phase), then waits up to `holdMs` unless aborted. */
async function serverHoldingFirstRun(
  holdMs: number,
  honourAbort: boolean,
  storeKind: StoreKind = "sqlite",
): Promise<FaultServer> {
  const server = await startFaultServer({
    dir: scratch.dir,
    ...(storeKind === "postgres" ? { store: await postgres.openStore() } : {}),
    async createPayment(_req, _ctx, { run, charge, sleepUnlessAborted }) {
      const chargeId = await charge("phase");
      if (run.n === 1) {
        await (honourAbort ? sleepUnlessAborted(holdMs) : new Promise((resolve) => setTimeout(resolve, holdMs)));
      }
      return { payment: { paymentId: `pay_${run.n}`, chargeId } };
    },
  });
  scratch.closeAfter(() => server.close());
  return server;
}

/** The first execution of `requestId`, once it has returned or thrown. */
async function firstRunDone(server: FaultServer, requestId: string): Promise<FaultRun | undefined> {
  const run = server.runsOf(requestId)[0];
  await run?.done;
  return run;
}

/**
 * An AbortSignal that aborts `afterMs` after the `nth` execution of
 * `requestId` started, so that the client leaves while the handler runs
 * however slowly the machine reaches it (waits at most 5 s for the start).
 */
function abortOnceRunning(server: FaultServer, requestId: string, afterMs = 50, nth = 1): AbortSignal {
  const controller = new AbortController();
  const until = Date.now() + 5_000;
  const poll = () => {
    if (server.runsOf(requestId).length >= nth || Date.now() > until) {
      setTimeout(() => controller.abort(), afterMs);
    } else {
      setTimeout(poll, 5);
    }
  };
  poll();
  return controller.signal;
}

function tally(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) {
    counts[value] = (counts[value] ?? 0) + 1;
  }
  return counts;
}

/** What one deadline trial showed: the first call's answer, the handler's abort, the record, the retry. */
interface DeadlineTrial {
  /** Whether the first call reached the handler before its deadline (under load it may not). */
  readonly reachedHandler: boolean;
  readonly client: string;
  readonly server: string;
  readonly afterFirst: string;
  readonly retry: string;
  readonly retryMs: number;
  readonly contexts: string;
  readonly charges: number | undefined;
}

/** Calls with `timeoutMs: 200` while the first execution holds 1 s, then retries with the same ID; `count` times. */
async function deadlineTrials(
  server: FaultServer,
  client: Client<typeof PaymentService>,
  count: number,
): Promise<DeadlineTrial[]> {
  const seen: DeadlineTrial[] = [];
  for (let i = 0; i < count; i++) {
    const req = newRequest();
    const first = await answerOf(client.createPayment(req, { timeoutMs: 200 }));
    const run = await firstRunDone(server, req.requestId);
    const afterFirst = await server.settled(req.requestId);
    const start = performance.now();
    const retry = await answerOf(client.createPayment(req));
    seen.push({
      reachedHandler: run !== undefined,
      client: first.split(":")[0] ?? first,
      server: (run?.aborted ?? "not aborted").slice(0, 60),
      afterFirst: `${afterFirst?.status ?? "deleted"} ${describeOutcome(afterFirst)}`,
      retry,
      retryMs: performance.now() - start,
      contexts: server
        .runsOf(req.requestId)
        .map((r) => `${r.attempt}/${r.takeover}`)
        .join(" "),
      charges: server.charges.get(req.requestId),
    });
  }
  return seen;
}

/** How often each side of the race and each result happened. */
function report(seen: readonly DeadlineTrial[]) {
  return {
    "first call reached the handler": tally(seen.map((s) => String(s.reachedHandler))),
    "client saw": tally(seen.map((s) => s.client)),
    "handler's signal aborted with": tally(seen.map((s) => s.server)),
    "record after the first call": tally(seen.map((s) => s.afterFirst)),
    "retry answered": tally(seen.map((s) => s.retry.replace(/pay_\d+/, "pay_n"))),
    "executions (attempt/takeover)": tally(seen.map((s) => s.contexts)),
    charges: tally(seen.map((s) => String(s.charges))),
    "slowest retry ms": Math.round(Math.max(...seen.map((s) => s.retryMs))),
  };
}

/** The trials that broke a rule, by rule. */
function verdict(seen: readonly DeadlineTrial[]) {
  return {
    storedTransportErrors: seen.filter((s) => s.afterFirst.startsWith("completed")).map((s) => s.afterFirst),
    secondCharges: seen.filter((s) => s.charges !== 1).length,
    failedRetries: seen.filter((s) => !s.retry.startsWith("ok")).map((s) => s.retry),
    retriesThatWaited: seen.filter((s) => s.retryMs >= noLeaseWaitMs).length,
    // A first call that reached the handler is taken over by the retry; one
    // that did not (its deadline passed while it claimed) left nothing behind.
    wrongExecutions: seen
      .filter((s) => s.contexts !== (s.reachedHandler ? "1/false 2/true" : "1/false"))
      .map((s) => s.contexts),
    someReachedHandler: seen.some((s) => s.reachedHandler),
  };
}

/** `verdict` when every trial interrupted (or never started), took over at once and charged once. */
const exactlyOnce = {
  storedTransportErrors: [],
  secondCharges: 0,
  failedRetries: [],
  retriesThatWaited: 0,
  wrongExecutions: [],
  someReachedHandler: true,
};

/** A client interceptor that drops the deadline header, so that only the client's own timer knows the deadline. */
const withoutTimeoutHeader: Interceptor = (next) => (req) => {
  req.header.delete("connect-timeout-ms");
  req.header.delete("grpc-timeout");
  return next(req);
};

describe("a client that went away while the handler ran", () => {
  for (const protocol of protocols) {
    for (const storeKind of storeKinds) {
      it(`${protocol}, ${storeKind}: an AbortSignal while the handler runs stores nothing; the retry takes over at once (attempt 2, takeover) and the phase charged once`, async () => {
        const server = await serverHoldingFirstRun(5_000, true, storeKind);
        const client = server.client(protocol);
        const req = newRequest();
        const first = await answerOf(client.createPayment(req, { signal: abortOnceRunning(server, req.requestId) }));
        const run = await firstRunDone(server, req.requestId);
        const afterFirst = await server.settled(req.requestId);
        const start = performance.now();
        const retry = await answerOf(client.createPayment(req));
        const retryMs = performance.now() - start;
        expect({
          first: first.split(":")[0],
          handlerSawAbort: run?.aborted !== undefined,
          afterFirst: `${afterFirst?.status} ${describeOutcome(afterFirst)}`,
          retry,
          retryWithinMs: retryMs < noLeaseWaitMs ? `< ${noLeaseWaitMs}` : Math.round(retryMs),
          contexts: server.runsOf(req.requestId).map((r) => [r.attempt, r.takeover]),
          charges: server.charges.get(req.requestId),
        }).toEqual({
          first: "Canceled",
          handlerSawAbort: true,
          afterFirst: "interrupted none",
          retry: "ok pay_2",
          retryWithinMs: `< ${noLeaseWaitMs}`,
          contexts: [
            [1, false],
            [2, true],
          ],
          charges: 1,
        });
      });

      it(`${protocol}, ${storeKind}: a client deadline while the handler runs, ${trials} times, never stores a transport error and never charges twice`, async () => {
        const server = await serverHoldingFirstRun(1_000, true, storeKind);
        const seen = await deadlineTrials(server, server.client(protocol), trials);
        console.log(`${protocol} ${storeKind} deadline race, ${trials} trials:`, JSON.stringify(report(seen), null, 1));
        expect(verdict(seen)).toEqual(exactlyOnce);
      });

      it(`${protocol}, ${storeKind}: the client's stream reset alone (its deadline timer, no timeout header) is never stored either`, async () => {
        // Without the timeout header the server has no deadline of its own:
        // the handler only learns of the client's deadline through the reset,
        // which is the side of the race that stored INTERNAL before.
        const server = await serverHoldingFirstRun(1_000, true, storeKind);
        const transport = (protocol === "grpc" ? createGrpcTransport : createConnectTransport)({
          baseUrl: server.baseUrl,
          httpVersion: "2",
          interceptors: [withoutTimeoutHeader],
        });
        const seen = await deadlineTrials(server, createClient(PaymentService, transport), 5);
        console.log(`${protocol} ${storeKind} stream reset, 5 trials:`, JSON.stringify(report(seen), null, 1));
        const sides = seen.filter((s) => s.reachedHandler).map((s) => s.server.split(" ")[0]);
        expect([...new Set(sides)]).toEqual(["Internal"]);
        expect(verdict(seen)).toEqual(exactlyOnce);
      });
    }

    for (const leave of ["abort", "deadline"] as const) {
      it(`${protocol}: a handler that finishes after the client left (${leave}) stores its outcome, and the retry replays it (1 charge)`, async () => {
        const server = await serverHoldingFirstRun(400, false);
        const client = server.client(protocol);
        const req = newRequest();
        const first = await answerOf(
          client.createPayment(
            req,
            leave === "abort" ? { signal: abortOnceRunning(server, req.requestId) } : { timeoutMs: 100 },
          ),
        );
        await firstRunDone(server, req.requestId);
        const record = await server.settled(req.requestId);
        const retry = await answerOf(client.createPayment(req));
        expect({
          first: first.split(":")[0],
          record: `${record?.status} ${describeOutcome(record)}`,
          retry,
          executions: server.runsOf(req.requestId).length,
          charges: server.charges.get(req.requestId),
        }).toEqual({
          first: leave === "abort" ? "Canceled" : "DeadlineExceeded",
          record: "completed response",
          retry: "ok pay_1",
          executions: 1,
          charges: 1,
        });
      });
    }

    it(`${protocol}: a retry that arrives while the abandoned handler still runs waits for it and replays its outcome (no takeover)`, async () => {
      const server = await serverHoldingFirstRun(1_500, false);
      const client = server.client(protocol);
      const req = newRequest();
      const first = await answerOf(client.createPayment(req, { signal: abortOnceRunning(server, req.requestId) }));
      const retry = await answerOf(client.createPayment(req));
      expect({
        first: first.split(":")[0],
        retry,
        executions: server.runsOf(req.requestId).map((r) => [r.attempt, r.takeover]),
        charges: server.charges.get(req.requestId),
      }).toEqual({ first: "Canceled", retry: "ok pay_1", executions: [[1, false]], charges: 1 });
    });
  }
});

describe("a handler that ends just as the deadline passes", () => {
  for (const protocol of protocols) {
    it(`${protocol}: ${trials} trials with the handler ending 180-220 ms into a 200 ms deadline: one charge, one answer per ID`, async () => {
      // Each trial lands on either side: the handler's answer stored (the
      // retry replays pay_1) or its abort interrupting (the retry takes over
      // with pay_2). Both are fine; a stored error or a second charge is not.
      const server = await startFaultServer({
        dir: scratch.dir,
        async createPayment(_req, _ctx, { run, charge, sleepUnlessAborted }) {
          await charge("phase");
          if (run.n === 1) {
            await sleepUnlessAborted(180 + Math.floor(Math.random() * 41));
          }
          return undefined;
        },
      });
      scratch.closeAfter(() => server.close());
      const client = server.client(protocol);
      const expectedRetry: Record<string, string> = {
        "completed response": "ok pay_1",
        "interrupted none": "ok pay_2",
        "deleted none": "ok pay_1",
      };
      const seen: { first: string; record: string; retry: string; again: string; charges: number | undefined }[] = [];
      for (let i = 0; i < trials; i++) {
        const req = newRequest();
        const first = await answerOf(client.createPayment(req, { timeoutMs: 200 }));
        await firstRunDone(server, req.requestId);
        const record = await server.settled(req.requestId);
        const retry = await answerOf(client.createPayment(req));
        const again = await answerOf(client.createPayment(req));
        seen.push({
          first: first.split(":")[0] ?? first,
          record: `${record?.status ?? "deleted"} ${describeOutcome(record)}`,
          retry,
          again,
          charges: server.charges.get(req.requestId),
        });
      }
      console.log(
        `${protocol} handler ending at the deadline, ${trials} trials:`,
        JSON.stringify({
          "first call": tally(seen.map((s) => s.first)),
          "record after it": tally(seen.map((s) => s.record)),
          retry: tally(seen.map((s) => s.retry)),
        }),
      );
      expect({
        storedErrors: seen.filter((s) => s.record.includes("error")).map((s) => s.record),
        secondCharges: seen.filter((s) => s.charges !== 1).length,
        // A stored response is replayed; an interrupted record is taken over;
        // without a record (under load the deadline may pass before the
        // handler starts) the retry is the first execution.
        inconsistent: seen.filter(
          (s) =>
            s.retry !== s.again ||
            s.retry !== expectedRetry[s.record] ||
            (s.first === "ok pay_1" && s.retry !== "ok pay_1"),
        ),
      }).toEqual({ storedErrors: [], secondCharges: 0, inconsistent: [] });
    });
  }
});

describe("an abort decides by the signal, not by the code the handler threw", () => {
  it("a stored-class error (InvalidArgument) thrown after the client aborted interrupts: the retry takes over (attempt 2, takeover)", async () => {
    const server = await startFaultServer({
      dir: scratch.dir,
      async createPayment(_req, _ctx, { run, charge, sleepUnlessAborted }) {
        await charge("phase");
        if (run.n === 1) {
          await sleepUnlessAborted(5_000).catch(() => {
            throw new ConnectError("amount no longer valid", Code.InvalidArgument);
          });
        }
        return undefined;
      },
    });
    scratch.closeAfter(() => server.close());
    const client = server.client();
    const req = newRequest();
    await answerOf(client.createPayment(req, { signal: abortOnceRunning(server, req.requestId) }));
    await firstRunDone(server, req.requestId);
    const record = await server.settled(req.requestId);
    const retry = await answerOf(client.createPayment(req));
    expect({
      record: `${record?.status} ${describeOutcome(record)}`,
      retry,
      executions: server.runsOf(req.requestId).map((r) => [r.attempt, r.takeover]),
      charges: server.charges.get(req.requestId),
    }).toEqual({
      record: "interrupted none",
      retry: "ok pay_2",
      executions: [
        [1, false],
        [2, true],
      ],
      charges: 1,
    });
  });

  for (const leave of ["abort", "deadline"] as const) {
    it(`a waiting duplicate whose client leaves (${leave}) changes nothing: the running execution completes, and a later call replays it`, async () => {
      const server = await serverHoldingFirstRun(1_000, false);
      const client = server.client();
      const req = newRequest();
      const running = answerOf(client.createPayment(req));
      while (server.runsOf(req.requestId).length === 0) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const duplicate = await answerOf(
        client.createPayment(req, leave === "abort" ? { signal: AbortSignal.timeout(100) } : { timeoutMs: 100 }),
      );
      expect({
        duplicate: duplicate.split(":")[0],
        running: await running,
        later: await answerOf(client.createPayment(req)),
        executions: server.runsOf(req.requestId).length,
        charges: server.charges.get(req.requestId),
      }).toEqual({
        duplicate: leave === "abort" ? "Canceled" : expect.stringMatching(/DeadlineExceeded|Aborted/),
        running: "ok pay_1",
        later: "ok pay_1",
        executions: 1,
        charges: 1,
      });
    });
  }
});

describe("effects that land after the client left are kept", () => {
  it("a phase that finishes after the client aborted is recorded: the takeover does not charge again", async () => {
    const server = await startFaultServer({
      dir: scratch.dir,
      async createPayment(_req, ctx, { run, sleepUnlessAborted }) {
        // The bank call outlasts the client and ignores its abort.
        await atomicEffects(ctx, server.store).phase("charge", async () => {
          await new Promise((resolve) => setTimeout(resolve, 300));
          server.charges.set(_req.requestId, (server.charges.get(_req.requestId) ?? 0) + 1);
          return "charged";
        });
        if (run.n === 1) {
          await sleepUnlessAborted(5_000);
        }
        return undefined;
      },
    });
    scratch.closeAfter(() => server.close());
    const client = server.client();
    const req = newRequest();
    const first = await answerOf(client.createPayment(req, { signal: abortOnceRunning(server, req.requestId) }));
    await firstRunDone(server, req.requestId);
    const record = await server.settled(req.requestId);
    const retry = await answerOf(client.createPayment(req));
    expect({
      first: first.split(":")[0],
      record: `${record?.status} ${describeOutcome(record)}`,
      retry,
      executions: server.runsOf(req.requestId).map((r) => [r.attempt, r.takeover]),
      charges: server.charges.get(req.requestId),
    }).toEqual({
      first: "Canceled",
      record: "interrupted none",
      retry: "ok pay_2",
      executions: [
        [1, false],
        [2, true],
      ],
      charges: 1,
    });
  });

  it("sqlite: a commit after the client aborted commits the write with the outcome: the retry replays it, and the write happened once", async () => {
    const store = createSqliteStore({ path: join(scratch.dir, "commit.db"), sweepIntervalMs: 0 });
    store.database.exec("CREATE TABLE payments (request_id TEXT PRIMARY KEY)");
    let commits = 0;
    const server = await startFaultServer({
      dir: scratch.dir,
      store,
      async createPayment(req, ctx) {
        await new Promise((resolve) => setTimeout(resolve, 300));
        const response = await atomicEffects(ctx, store).commit((db) => {
          commits += 1;
          db.prepare("INSERT INTO payments (request_id) VALUES (?)").run(req.requestId);
          return create(CreatePaymentResponseSchema, { payment: { paymentId: "pay_committed" } });
        });
        return response;
      },
    });
    scratch.closeAfter(() => server.close());
    const client = server.client();
    const req = newRequest();
    const first = await answerOf(client.createPayment(req, { signal: abortOnceRunning(server, req.requestId) }));
    await firstRunDone(server, req.requestId);
    const record = await server.settled(req.requestId);
    const retry = await answerOf(client.createPayment(req));
    const rows = store.database.prepare("SELECT count(*) AS n FROM payments").get() as { n: number };
    expect({
      first: first.split(":")[0],
      record: `${record?.status} ${describeOutcome(record)}`,
      retry,
      executions: server.runsOf(req.requestId).length,
      commits,
      rows: rows.n,
    }).toEqual({
      first: "Canceled",
      record: "completed response",
      retry: "ok pay_committed",
      executions: 1,
      commits: 1,
      rows: 1,
    });
  });

  it("postgres: a commit after the client aborted commits the write with the outcome: the retry replays it, and the write happened once", async () => {
    const store = await postgres.openStore();
    await postgres.admin.query(`CREATE TABLE IF NOT EXISTS ${postgres.name}.payments (request_id text PRIMARY KEY)`);
    let commits = 0;
    const server = await startFaultServer({
      dir: scratch.dir,
      store,
      async createPayment(req, ctx) {
        await new Promise((resolve) => setTimeout(resolve, 300));
        return atomicEffects(ctx, store).commit(async (tx) => {
          commits += 1;
          await tx.query(`INSERT INTO ${postgres.name}.payments (request_id) VALUES ($1)`, [req.requestId]);
          return create(CreatePaymentResponseSchema, { payment: { paymentId: "pay_committed" } });
        });
      },
    });
    scratch.closeAfter(() => server.close());
    const client = server.client();
    const req = newRequest();
    const first = await answerOf(client.createPayment(req, { signal: abortOnceRunning(server, req.requestId) }));
    await firstRunDone(server, req.requestId);
    const record = await server.settled(req.requestId);
    const retry = await answerOf(client.createPayment(req));
    const rows = await postgres.admin.query(
      `SELECT count(*)::int AS n FROM ${postgres.name}.payments WHERE request_id = $1`,
      [req.requestId],
    );
    expect({
      first: first.split(":")[0],
      record: `${record?.status} ${describeOutcome(record)}`,
      retry,
      executions: server.runsOf(req.requestId).length,
      commits,
      rows: rows.rows[0]?.n,
    }).toEqual({
      first: "Canceled",
      record: "completed response",
      retry: "ok pay_committed",
      executions: 1,
      commits: 1,
      rows: 1,
    });
  });

  it("a client that aborts the takeover too leaves the record interrupted again: the next retry is attempt 3", async () => {
    const server = await startFaultServer({
      dir: scratch.dir,
      async createPayment(_req, _ctx, { run, charge, sleepUnlessAborted }) {
        await charge("phase");
        if (run.n <= 2) {
          await sleepUnlessAborted(5_000);
        }
        return undefined;
      },
    });
    scratch.closeAfter(() => server.close());
    const client = server.client();
    const req = newRequest();
    const answers: string[] = [];
    for (let i = 0; i < 2; i++) {
      answers.push(
        await answerOf(client.createPayment(req, { signal: abortOnceRunning(server, req.requestId, 50, i + 1) })),
      );
      await server.runsOf(req.requestId)[i]?.done;
      await server.settled(req.requestId);
    }
    answers.push(await answerOf(client.createPayment(req)));
    expect({
      answers: answers.map((a) => a.split(":")[0]),
      executions: server.runsOf(req.requestId).map((r) => [r.attempt, r.takeover]),
      charges: server.charges.get(req.requestId),
    }).toEqual({
      answers: ["Canceled", "Canceled", "ok pay_3"],
      executions: [
        [1, false],
        [2, true],
        [3, true],
      ],
      charges: 1,
    });
  });
});

describe("a handler's own mark wins over the client's abort", () => {
  /** A server whose first execution charges, waits for the abort, and throws `mark(error)`. */
  async function serverMarkingOnAbort(mark: (error: ConnectError) => ConnectError) {
    const server = await startFaultServer({
      dir: scratch.dir,
      async createPayment(_req, _ctx, { run, charge, sleepUnlessAborted }) {
        await charge("phase");
        if (run.n === 1) {
          await sleepUnlessAborted(5_000).catch(() => {
            throw mark(new ConnectError("gave up after the bank call", Code.Unavailable));
          });
        }
        return undefined;
      },
    });
    scratch.closeAfter(() => server.close());
    return server;
  }

  it("storeOnError(err) thrown after the client aborted is stored: the retry replays it, nothing runs again", async () => {
    const server = await serverMarkingOnAbort(storeOnError);
    const client = server.client();
    const req = newRequest();
    const first = await answerOf(client.createPayment(req, { signal: abortOnceRunning(server, req.requestId) }));
    await firstRunDone(server, req.requestId);
    const record = await server.settled(req.requestId);
    const retry = await answerOf(client.createPayment(req));
    expect({
      first: first.split(":")[0],
      record: `${record?.status} ${describeOutcome(record)}`,
      retry,
      executions: server.runsOf(req.requestId).length,
    }).toEqual({
      first: "Canceled",
      record: "completed error Unavailable gave up after the bank call",
      retry: "Unavailable: gave up after the bank call",
      executions: 1,
    });
  });

  it("releaseOnError(err) thrown after the client aborted releases: the retry runs afresh (attempt 1, takeover false)", async () => {
    const server = await serverMarkingOnAbort(releaseOnError);
    const client = server.client();
    const req = newRequest();
    await answerOf(client.createPayment(req, { signal: abortOnceRunning(server, req.requestId) }));
    await firstRunDone(server, req.requestId);
    const record = await server.settled(req.requestId);
    const retry = await answerOf(client.createPayment(req));
    expect({
      record: record?.status ?? "deleted",
      retry,
      executions: server.runsOf(req.requestId).map((r) => [r.attempt, r.takeover]),
      charges: server.charges.get(req.requestId),
    }).toEqual({
      record: "deleted",
      retry: "ok pay_2",
      executions: [
        [1, false],
        [1, false],
      ],
      charges: 2,
    });
  });
});
