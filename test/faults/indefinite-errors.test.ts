// Errors after the handler started are indefinite unless the handler says
// otherwise: the record stays (interrupted, with its phases), the client gets
// the code the handler threw, and the next call with the same ID takes over at
// once with `attempt: 2, takeover: true`. The lease is the default 30 s, so a
// retry that answered within a few seconds did not wait for it.
import { Code, ConnectError } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { createPaymentServiceClient } from "../../gen/demo/v1/payments_idempotency.js";
import { isRetryableError } from "../../src/client/retryable-error.js";
import { findErrorReason } from "../../src/errors/idempotency-error.js";
import {
  createIdempotencyInterceptor,
  type IdempotencyInterceptorOptions,
  releaseOnError,
  storeOnError,
} from "../../src/index.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import {
  type ChargeMode,
  type FaultServerOptions,
  answerOf,
  codeName,
  describeOutcome,
  startFaultServer,
} from "../support/fault-test-server.js";
import { usePerTestScratch } from "../support/per-test-scratch.js";
import { useTestSchema } from "../support/postgres-database.js";

const scratch = usePerTestScratch("indefinite-errors-");
const postgres = useTestSchema("faults_indefinite");

/** The stores the record-keeping tests run on: a SQLite file, or the local PostgreSQL (own schema). */
type StoreKind = "sqlite" | "postgres";
const storeKinds: readonly StoreKind[] = ["sqlite", "postgres"];
const protocols = ["connect", "grpc"] as const;

/** The codes that are indefinite by default. */
const indefiniteCodes = [
  Code.Unavailable,
  Code.ResourceExhausted,
  Code.Aborted,
  Code.DeadlineExceeded,
  Code.Canceled,
] as const;

/** The retry must answer well before the 30 s lease would have ended. */
const noLeaseWaitMs = 3_000;

/** A server whose handler charges, then fails the first execution of each request ID with `fail()`. */
async function serverFailingFirstRun(
  mode: ChargeMode,
  fail: () => unknown,
  interceptor: FaultServerOptions["interceptor"] = {},
  storeKind: StoreKind = "sqlite",
) {
  const server = await startFaultServer({
    dir: scratch.dir,
    interceptor,
    ...(storeKind === "postgres" ? { store: await postgres.openStore() } : {}),
    async createPayment(_req, _ctx, { run, charge }) {
      const chargeId = await charge(mode);
      if (run.n === 1) {
        throw fail();
      }
      return { payment: { paymentId: `pay_${run.n}`, chargeId } };
    },
  });
  scratch.closeAfter(() => server.close());
  return server;
}

async function timed<T>(call: Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await call;
  return { value, ms: performance.now() - start };
}

const newRequest = () => ({ requestId: crypto.randomUUID(), accountId: "acct_1", amountMinor: 1000n, currency: "EUR" });

describe("indefinite errors: the record stays and the next call takes over at once", () => {
  for (const code of indefiniteCodes) {
    const name = codeName(code);

    for (const [storeKind, protocol] of storeKinds.flatMap((k) => protocols.map((p) => [k, p] as const))) {
      it(`${name} after a phase charged (${storeKind}, ${protocol}): the client gets ${name}; the retry takes over at once (attempt 2, takeover) and the phase charged once`, async () => {
        const fail = () => new ConnectError("bank reply lost", code);
        const server = await serverFailingFirstRun("phase", fail, {}, storeKind);
        const client = server.client(protocol);
        const req = newRequest();
        const first = await answerOf(client.createPayment(req));
        const afterFirst = await server.record(req.requestId);
        const retry = await timed(answerOf(client.createPayment(req)));
        expect({
          first,
          recordAfterFirst: afterFirst?.status,
          retry: retry.value,
          retryWithinMs: retry.ms < noLeaseWaitMs ? `< ${noLeaseWaitMs}` : Math.round(retry.ms),
          runs: server.runsOf(req.requestId).map((r) => [r.attempt, r.takeover]),
          charges: server.charges.get(req.requestId),
        }).toEqual({
          first: `${name}: bank reply lost`,
          recordAfterFirst: "interrupted",
          retry: "ok pay_2",
          retryWithinMs: `< ${noLeaseWaitMs}`,
          runs: [
            [1, false],
            [2, true],
          ],
          charges: 1,
        });
        // The second charge ID would name a second charge.
        expect(describeOutcome(await server.record(req.requestId))).toBe("response");
      });
    }

    it(`${name} without phases: the retry takes over with takeover: true, so the handler knows it may have charged`, async () => {
      const server = await serverFailingFirstRun("plain", () => new ConnectError("bank reply lost", code));
      const client = server.client();
      const req = newRequest();
      const first = await answerOf(client.createPayment(req));
      const retry = await timed(answerOf(client.createPayment(req)));
      expect({
        first,
        retry: retry.value,
        retryWithinMs: retry.ms < noLeaseWaitMs ? `< ${noLeaseWaitMs}` : Math.round(retry.ms),
        runs: server.runsOf(req.requestId).map((r) => [r.attempt, r.takeover]),
      }).toEqual({
        first: `${name}: bank reply lost`,
        retry: "ok pay_2",
        retryWithinMs: `< ${noLeaseWaitMs}`,
        runs: [
          [1, false],
          [2, true],
        ],
      });
    });

    const retried = isRetryableError(new ConnectError("", code));
    it(
      retried
        ? `${name} under the generated client's default retries: the caller gets the takeover's success; with a phase the charge happened once, without one the handler knew takeover: true`
        : `${name} is not retried by the generated client: the caller gets ${name}, and the caller's own retry takes over`,
      async () => {
        const phased = await serverFailingFirstRun("phase", () => new ConnectError("bank reply lost", code));
        const plain = await serverFailingFirstRun("plain", () => new ConnectError("bank reply lost", code));
        const seen: Record<string, unknown> = {};
        for (const [label, server] of [
          ["phase", phased],
          ["plain", plain],
        ] as const) {
          // The generated client with its defaults: 5 attempts, 100 ms first backoff.
          const client = createPaymentServiceClient(
            createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "2" }),
          );
          const answer = await timed(answerOf(client.createPayment({ accountId: "acct_1", amountMinor: 1000n })));
          const requestId = server.runs[0]?.requestId ?? "";
          const again = retried
            ? undefined
            : await answerOf(client.createPayment({ requestId, amountMinor: 1000n, accountId: "acct_1" }));
          seen[label] = {
            answer: answer.value,
            withinMs: answer.ms < noLeaseWaitMs ? `< ${noLeaseWaitMs}` : Math.round(answer.ms),
            again,
            runs: server.runsOf(requestId).map((r) => [r.attempt, r.takeover]),
            charges: server.charges.get(requestId),
          };
        }
        const takeover = {
          withinMs: `< ${noLeaseWaitMs}`,
          runs: [
            [1, false],
            [2, true],
          ],
        };
        expect(seen).toEqual(
          retried
            ? {
                phase: { answer: "ok pay_2", again: undefined, charges: 1, ...takeover },
                plain: { answer: "ok pay_2", again: undefined, charges: 2, ...takeover },
              }
            : {
                phase: { answer: `${name}: bank reply lost`, again: "ok pay_2", charges: 1, ...takeover },
                plain: { answer: `${name}: bank reply lost`, again: "ok pay_2", charges: 2, ...takeover },
              },
        );
      },
    );
  }
});

describe("an interrupted record is in the store, not in one process", () => {
  /**
   * Two servers on one store (one SQLite file, or one PostgreSQL table), as
   * two processes would be. The first execution of a request ID, on either,
   * charges in a phase and throws Unavailable; later ones take 200 ms.
   */
  async function twoServers(storeKind: StoreKind) {
    const failed = new Set<string>();
    const table = postgres.nextTable();
    const path = `${scratch.dir}/shared.db`;
    const start = async () => {
      const server = await startFaultServer({
        dir: scratch.dir,
        ...(storeKind === "postgres" ? { store: await postgres.openStore({ table }) } : { sqlite: { path } }),
        async createPayment(req, _ctx, { run, charge }) {
          const chargeId = await charge("phase");
          if (!failed.has(req.requestId)) {
            failed.add(req.requestId);
            throw new ConnectError("bank reply lost", Code.Unavailable);
          }
          await new Promise((resolve) => setTimeout(resolve, 200));
          return { payment: { paymentId: `pay_${run.n}_${run.attempt}`, chargeId } };
        },
      });
      scratch.closeAfter(() => server.close());
      return server;
    };
    const a = await start();
    const b = await start();
    const executions = (requestId: string) => [
      ...a.runsOf(requestId).map((r) => `a ${r.attempt}/${r.takeover}`),
      ...b.runsOf(requestId).map((r) => `b ${r.attempt}/${r.takeover}`),
    ];
    const charges = (requestId: string) => (a.charges.get(requestId) ?? 0) + (b.charges.get(requestId) ?? 0);
    return { a, b, executions, charges };
  }

  for (const storeKind of storeKinds) {
    it(`${storeKind}: after an indefinite error in one process, a retry through another process takes over at once (attempt 2, takeover)`, async () => {
      const { a, b, executions, charges } = await twoServers(storeKind);
      const req = newRequest();
      const first = await answerOf(a.client().createPayment(req));
      const retry = await timed(answerOf(b.client().createPayment(req)));
      expect({
        first,
        retry: retry.value,
        withinMs: retry.ms < noLeaseWaitMs ? `< ${noLeaseWaitMs}` : Math.round(retry.ms),
        executions: executions(req.requestId),
        charges: charges(req.requestId),
      }).toEqual({
        first: "Unavailable: bank reply lost",
        retry: "ok pay_1_2",
        withinMs: `< ${noLeaseWaitMs}`,
        executions: ["a 1/false", "b 2/true"],
        charges: 1,
      });
    });

    it(`${storeKind}: 8 concurrent retries through two processes after an indefinite error: one takeover, and every caller gets its answer`, async () => {
      const { a, b, executions, charges } = await twoServers(storeKind);
      const req = newRequest();
      const first = await answerOf(a.client().createPayment(req));
      const answers = await Promise.all(
        Array.from({ length: 8 }, (_, i) => answerOf((i % 2 === 0 ? a : b).client().createPayment(req))),
      );
      const takeovers = executions(req.requestId).slice(1);
      expect({
        first,
        distinctAnswers: [...new Set(answers)],
        takeovers: takeovers.map((e) => e.slice(2)),
        charges: charges(req.requestId),
      }).toEqual({
        first: "Unavailable: bank reply lost",
        distinctAnswers: [expect.stringMatching(/^ok pay_[12]_2$/)],
        takeovers: ["2/true"],
        charges: 1,
      });
    });

    it(`${storeKind}: an interrupted record is never taken over by another payload under its ID (REQUEST_ID_REUSED), and its own payload still takes over`, async () => {
      const { a, b, executions, charges } = await twoServers(storeKind);
      const req = newRequest();
      const first = await answerOf(a.client().createPayment(req));
      const other = await b
        .client()
        .createPayment({ ...req, amountMinor: 1n })
        .then(
          () => "ok",
          (error: unknown) => {
            const e = ConnectError.from(error);
            return `${codeName(e.code)} ${findErrorReason(e)}`;
          },
        );
      const own = await answerOf(b.client().createPayment(req));
      expect({ first, other, own, executions: executions(req.requestId), charges: charges(req.requestId) }).toEqual({
        first: "Unavailable: bank reply lost",
        other: "FailedPrecondition REQUEST_ID_REUSED",
        own: "ok pay_1_2",
        executions: ["a 1/false", "b 2/true"],
        charges: 1,
      });
    });
  }
});

describe("releaseOnError and storeOnError decide for the handler", () => {
  for (const storeKind of storeKinds) {
    it(`releaseOnError(err) (${storeKind}): the record and its phases are deleted, and the retry runs afresh (attempt 1, takeover false)`, async () => {
      const server = await serverFailingFirstRun(
        "phase",
        () => releaseOnError(new ConnectError("card declined before charging", Code.Unavailable)),
        {},
        storeKind,
      );
      const client = server.client();
      const req = newRequest();
      const first = await answerOf(client.createPayment(req));
      const afterFirst = await server.record(req.requestId);
      const retry = await answerOf(client.createPayment(req));
      expect({
        first,
        recordAfterFirst: afterFirst?.status ?? "deleted",
        retry,
        runs: server.runsOf(req.requestId).map((r) => [r.attempt, r.takeover]),
        // The phase ran again: its record was deleted with the claim.
        charges: server.charges.get(req.requestId),
      }).toEqual({
        first: "Unavailable: card declined before charging",
        recordAfterFirst: "deleted",
        retry: "ok pay_2",
        runs: [
          [1, false],
          [1, false],
        ],
        charges: 2,
      });
    });
  }

  for (const storeKind of storeKinds) {
    it(`storeOnError(err) (${storeKind}): the error is stored and the retry replays it without running the handler`, async () => {
      const server = await serverFailingFirstRun(
        "phase",
        () => storeOnError(new ConnectError("bank reply lost after the money moved", Code.Unavailable)),
        {},
        storeKind,
      );
      const client = server.client();
      const req = newRequest();
      const first = await answerOf(client.createPayment(req));
      const retry = await answerOf(client.createPayment(req));
      const record = await server.record(req.requestId);
      expect({
        first,
        retry,
        status: record?.status,
        outcome: describeOutcome(record),
        runs: server.runsOf(req.requestId).length,
        charges: server.charges.get(req.requestId),
      }).toEqual({
        first: "Unavailable: bank reply lost after the money moved",
        retry: "Unavailable: bank reply lost after the money moved",
        status: "completed",
        outcome: "error Unavailable bank reply lost after the money moved",
        runs: 1,
        charges: 1,
      });
    });
  }
});

describe("indefiniteCodes, storedCodes and releasedCodes move a code between classes", () => {
  /** What one request ID went through: first answer, retry answer, record after the first, executions. */
  async function outcomeOf(code: Code, interceptor: FaultServerOptions["interceptor"]) {
    const server = await serverFailingFirstRun("phase", () => new ConnectError("failed", code), interceptor);
    const client = server.client();
    const req = newRequest();
    const first = await answerOf(client.createPayment(req));
    const afterFirst = await server.record(req.requestId);
    const retry = await answerOf(client.createPayment(req));
    return {
      first,
      afterFirst: afterFirst?.status ?? "deleted",
      retry,
      runs: server.runsOf(req.requestId).map((r) => [r.attempt, r.takeover]),
      charges: server.charges.get(req.requestId),
    };
  }

  const takenOver = (code: Code) => ({
    first: `${codeName(code)}: failed`,
    afterFirst: "interrupted",
    retry: "ok pay_2",
    runs: [
      [1, false],
      [2, true],
    ],
    charges: 1,
  });
  const stored = (code: Code) => ({
    first: `${codeName(code)}: failed`,
    afterFirst: "completed",
    retry: `${codeName(code)}: failed`,
    runs: [[1, false]],
    charges: 1,
  });
  const released = (code: Code) => ({
    first: `${codeName(code)}: failed`,
    afterFirst: "deleted",
    retry: "ok pay_2",
    runs: [
      [1, false],
      [1, false],
    ],
    charges: 2,
  });

  it("by default Internal is stored: the retry replays it", async () => {
    expect(await outcomeOf(Code.Internal, {})).toEqual(stored(Code.Internal));
  });

  it("indefiniteCodes: [Internal] makes Internal indefinite: the retry takes over (attempt 2) and the phase charged once", async () => {
    expect(await outcomeOf(Code.Internal, { indefiniteCodes: [Code.Internal] })).toEqual(takenOver(Code.Internal));
  });

  it("storedCodes: [Unavailable] stores Unavailable; codes in no list keep their class (ResourceExhausted indefinite, NotFound stored)", async () => {
    const options = { storedCodes: [Code.Unavailable] };
    expect({
      unavailable: await outcomeOf(Code.Unavailable, options),
      resourceExhausted: await outcomeOf(Code.ResourceExhausted, options),
      notFound: await outcomeOf(Code.NotFound, options),
    }).toEqual({
      unavailable: stored(Code.Unavailable),
      resourceExhausted: takenOver(Code.ResourceExhausted),
      notFound: stored(Code.NotFound),
    });
  });

  it("releasedCodes: [Aborted] releases Aborted: the retry runs afresh (attempt 1); Unavailable stays indefinite", async () => {
    const options = { releasedCodes: [Code.Aborted] };
    expect({
      aborted: await outcomeOf(Code.Aborted, options),
      unavailable: await outcomeOf(Code.Unavailable, options),
    }).toEqual({
      aborted: released(Code.Aborted),
      unavailable: takenOver(Code.Unavailable),
    });
  });

  it("a code named in two of the lists is refused at construction, naming the code and both lists", () => {
    const store = createSqliteStore({ path: ":memory:", sweepIntervalMs: 0 });
    const refusal = (options: Partial<IdempotencyInterceptorOptions>) => {
      try {
        createIdempotencyInterceptor({ store, telemetry: false, ...options });
        return "accepted";
      } catch (error) {
        return error instanceof Error ? error.message : String(error);
      }
    };
    try {
      expect(refusal({ storedCodes: [Code.Unavailable], indefiniteCodes: [Code.Unavailable] })).toMatch(
        /Unavailable.*storedCodes.*indefiniteCodes/,
      );
      expect(refusal({ indefiniteCodes: [Code.Aborted], releasedCodes: [Code.Aborted] })).toMatch(
        /Aborted.*(indefiniteCodes.*releasedCodes|releasedCodes.*indefiniteCodes)/,
      );
    } finally {
      void store.close();
    }
  });
});
