// `attempt` and `takeover` of the handler's idempotency context on every path
// to an execution: 1/false for the first execution under a key (also after a
// release or an expiry: the key starts over), one more and true for every
// execution after one that may have acted (an indefinite error, a dead owner).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, describe, expect, it } from "vitest";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { ErrorReason } from "../../src/errors/error-reason.js";
import { findErrorReason } from "../../src/errors/idempotency-error.js";
import { idempotencyContext, releaseOnError } from "../../src/index.js";
import { type FaultServer, answerOf, startFaultServer } from "../support/fault-test-server.js";
import { createManualClock } from "../support/manual-clock.js";
import { usePerTestScratch } from "../support/per-test-scratch.js";
import { type ServerProcess, startServerProcess } from "../support/server-process.js";

const scratch = usePerTestScratch("attempt-takeover-");
const children: ServerProcess[] = [];
afterAll(async () => {
  await Promise.all(children.map((child) => child.kill("SIGKILL")));
});

const newRequest = () => ({ requestId: crypto.randomUUID(), accountId: "acct_1", amountMinor: 1000n });

/** A server whose handler throws `failures[n - 1]` in its n-th execution of a request ID, and answers after them. */
async function serverFailing(failures: (() => unknown)[]): Promise<FaultServer> {
  const server = await startFaultServer({
    dir: scratch.dir,
    async createPayment(_req, _ctx, { run, charge }) {
      await charge("phase");
      const fail = failures[run.n - 1];
      if (fail !== undefined) {
        throw fail();
      }
      return undefined;
    },
  });
  scratch.closeAfter(() => server.close());
  return server;
}

const contexts = (server: FaultServer, requestId: string) =>
  server.runsOf(requestId).map((r) => ({ attempt: r.attempt, takeover: r.takeover }));
const unavailable = () => new ConnectError("bank unreachable", Code.Unavailable);

describe("attempt and takeover", () => {
  it("first claim: attempt 1, takeover false", async () => {
    const server = await serverFailing([]);
    const req = newRequest();
    expect(await answerOf(server.client().createPayment(req))).toBe("ok pay_1");
    expect(contexts(server, req.requestId)).toEqual([{ attempt: 1, takeover: false }]);
  });

  it("after indefinite errors: the takeover has attempt 2, takeover true; a third execution attempt 3, takeover true", async () => {
    const server = await serverFailing([unavailable, unavailable]);
    const client = server.client();
    const req = newRequest();
    const answers = [
      await answerOf(client.createPayment(req)),
      await answerOf(client.createPayment(req)),
      await answerOf(client.createPayment(req)),
    ];
    expect({ answers, contexts: contexts(server, req.requestId) }).toEqual({
      answers: ["Unavailable: bank unreachable", "Unavailable: bank unreachable", "ok pay_3"],
      contexts: [
        { attempt: 1, takeover: false },
        { attempt: 2, takeover: true },
        { attempt: 3, takeover: true },
      ],
    });
  });

  it("after releaseOnError: the key starts over with attempt 1, takeover false (also when the released execution was a takeover)", async () => {
    const server = await serverFailing([
      () => releaseOnError(unavailable()),
      unavailable,
      () => releaseOnError(unavailable()),
    ]);
    const client = server.client();
    const req = newRequest();
    for (let i = 0; i < 4; i++) {
      await answerOf(client.createPayment(req));
    }
    expect(contexts(server, req.requestId)).toEqual([
      { attempt: 1, takeover: false }, // released
      { attempt: 1, takeover: false }, // indefinite
      { attempt: 2, takeover: true }, // released
      { attempt: 1, takeover: false }, // answers
    ]);
  });

  it("after the completed record expired: the key starts over with attempt 1, takeover false (the store's manual clock)", async () => {
    const clock = createManualClock();
    const server = await startFaultServer({
      dir: scratch.dir,
      sqlite: { clock },
      interceptor: { retentionMs: 60_000, tombstoneRetentionMs: 0 },
      async createPayment(_req, _ctx, { charge }) {
        await charge("phase");
        return undefined;
      },
    });
    scratch.closeAfter(() => server.close());
    const client = server.client();
    const req = newRequest();
    const first = await answerOf(client.createPayment(req));
    clock.advance(59_000);
    const beforeExpiry = await answerOf(client.createPayment(req));
    clock.advance(1_001);
    const afterExpiry = await answerOf(client.createPayment(req));
    expect({ first, beforeExpiry, afterExpiry, contexts: contexts(server, req.requestId) }).toEqual({
      first: "ok pay_1",
      beforeExpiry: "ok pay_1",
      afterExpiry: "ok pay_2",
      contexts: [
        { attempt: 1, takeover: false },
        { attempt: 1, takeover: false },
      ],
    });
    // The expired record's phases went with it: the new execution charged again.
    expect(server.charges.get(req.requestId)).toBe(2);
  });

  it("after a stalled owner's lease and grace ran out (the store's manual clock): attempt 2, takeover true; the stalled owner's caller gets the successor's answer", async () => {
    // Two servers on one SQLite file with one manual clock, as two processes
    // on one machine. The owner's handler waits on a gate; its renewals (every
    // 10 s of real time, a third of the default lease) never come in time.
    const clock = createManualClock();
    const path = join(scratch.dir, "stalled.db");
    let openGate = () => {};
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    const lostClaim: boolean[] = [];
    const start = (name: string, hold: boolean) =>
      startFaultServer({
        dir: scratch.dir,
        sqlite: { path, clock },
        async createPayment(_req, ctx, { run, charge }) {
          await charge("plain");
          if (hold) {
            await gate;
            lostClaim.push(ctx.values.get(idempotencyContext)?.signal.aborted ?? false);
          }
          return { payment: { paymentId: `pay_${name}_${run.n}` } };
        },
      });
    const owner = await start("owner", true);
    const successor = await start("successor", false);
    scratch.closeAfter(() => Promise.all([owner.close(), successor.close()]));
    const req = newRequest();
    const stalled = answerOf(owner.client().createPayment(req));
    for (let i = 0; i < 100 && owner.runs.length === 0; i++) {
      await sleep(10);
    }
    clock.advance(29_000);
    const beforeLeaseEnd = await answerOf(successor.client().createPayment(req, { timeoutMs: 300 }));
    clock.advance(2_000); // the lease (30 s) ended, its grace (2 s) not
    const withinGrace = await answerOf(successor.client().createPayment(req, { timeoutMs: 300 }));
    clock.advance(1_000);
    const afterGrace = await answerOf(successor.client().createPayment(req));
    openGate();
    expect({
      beforeLeaseEnd: beforeLeaseEnd.split(":")[0],
      withinGrace: withinGrace.split(":")[0],
      afterGrace,
      stalledCaller: await stalled,
      owner: contexts(owner, req.requestId),
      successor: contexts(successor, req.requestId),
      replay: await answerOf(owner.client().createPayment(req)),
    }).toEqual({
      beforeLeaseEnd: expect.stringMatching(/Aborted|DeadlineExceeded/),
      withinGrace: expect.stringMatching(/Aborted|DeadlineExceeded/),
      afterGrace: "ok pay_successor_1",
      stalledCaller: expect.stringMatching(/^ok pay_successor_1$|^Aborted: /),
      owner: [{ attempt: 1, takeover: false }],
      successor: [{ attempt: 2, takeover: true }],
      replay: "ok pay_successor_1",
    });
    console.log(`stalled owner: its caller got "${await stalled}", its signal aborted when it finished: ${lostClaim}`);
  });

  it("after a dead owner's lease and grace ran out: attempt 2, takeover true, and not before lease + grace", async () => {
    // Lease 3 s and grace 2 s instead of the defaults (30 s, 2 s): the store's
    // busy timeout must then be at most a third of the lease.
    const leaseMs = 3_000;
    const graceMs = 2_000;
    const path = join(scratch.dir, "shared.db");
    const executions = join(scratch.dir, "executions.tsv");
    const owner = await startServerProcess({
      script: "test/support/fault-server-process.ts",
      env: {
        SQLITE_PATH: path,
        BUSY_TIMEOUT_MS: "1000",
        LEASE_MS: String(leaseMs),
        HANDLER_MS: "-1",
        EXECUTIONS_FILE: executions,
      },
    });
    children.push(owner);
    const successor = await startFaultServer({
      dir: scratch.dir,
      sqlite: { path, busyTimeoutMs: 1_000 },
      interceptor: { leaseMs: leaseMs, leaseGraceMs: graceMs },
      async createPayment(_req, _ctx, { charge }) {
        await charge("plain");
        return undefined;
      },
    });
    scratch.closeAfter(() => successor.close());
    const req = newRequest();
    const toOwner = createClient(PaymentService, createConnectTransport({ baseUrl: owner.baseUrl, httpVersion: "2" }));
    const lost = answerOf(toOwner.createPayment(req));
    for (let i = 0; i < 200 && !existsSync(executions); i++) {
      await sleep(25);
    }
    // A little while for the owner's first renewal or two.
    await sleep(1_200);
    const killedAt = Date.now();
    await owner.kill("SIGKILL");
    const answer = await callUntilNotInProgress(() => successor.client().createPayment(req), 15_000);
    const takeover = successor.runsOf(req.requestId)[0];
    // The owner renewed at most a third of the lease before it died.
    const earliestMs = leaseMs - leaseMs / 3 + graceMs - 100;
    const waitedMs = (takeover?.startedAt ?? 0) - killedAt;
    expect({
      ownerAnswer: (await lost).split(":")[0],
      ownerExecution: readFileSync(executions, "utf8").trim().split("\t").slice(2),
      answer,
      successor: contexts(successor, req.requestId),
      takeoverAfterKillMs: waitedMs >= earliestMs ? `>= ${earliestMs}` : waitedMs,
    }).toEqual({
      ownerAnswer: expect.stringMatching(/Unavailable|Internal|Canceled|Aborted|Unknown/),
      ownerExecution: ["1", "false"],
      answer: "ok pay_1",
      successor: [{ attempt: 2, takeover: true }],
      takeoverAfterKillMs: `>= ${earliestMs}`,
    });
    console.log(`dead owner: takeover ${waitedMs} ms after SIGKILL (lease ${leaseMs} ms, grace ${graceMs} ms)`);
  });
});

/** Calls while the answer is REQUEST_IN_PROGRESS, for at most `timeoutMs`; returns the first other answer. */
async function callUntilNotInProgress(
  call: () => Promise<{ payment?: { paymentId: string } }>,
  timeoutMs: number,
): Promise<string> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      const response = await call();
      return `ok ${response.payment?.paymentId}`;
    } catch (error) {
      const e = ConnectError.from(error);
      if (findErrorReason(e) !== ErrorReason.REQUEST_IN_PROGRESS || Date.now() >= until) {
        return `${Code[e.code]}: ${e.rawMessage}`;
      }
      await sleep(100);
    }
  }
}
