// A stalled owner: two server processes share one SQLite file; the process
// that runs a handler stops answering (its event loop blocked) or is merely
// slow. Short times instead of the issue's: lease 3 s (the 30 s
// default would make each test minutes long), grace at its default (2 s).
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import type { ServerProcess } from "../support/server-process.js";
import {
  answerOf,
  eventCounts,
  inProgress,
  payment,
  paymentClient,
  type PaymentClient,
  readExecutions,
  startFaultServer,
  stopAll,
  storedAnswer,
} from "../support/fault-harness.js";
import { usePerTestScratch } from "../support/per-test-scratch.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";

const scratch = usePerTestScratch("idempotency-stalled-owner-");
const servers: ServerProcess[] = [];
const clients: PaymentClient[] = [];
afterAll(() => stopAll(servers, clients));

const leaseMs = 3_000;

async function start(
  name: string,
  env: Record<string, string> = {},
): Promise<{ server: ServerProcess; client: PaymentClient }> {
  const server = await startFaultServer({
    NAME: name,
    IDEMPOTENCY_STORE: "sqlite",
    SQLITE_PATH: join(scratch.dir, "records.db"),
    // The interceptor refuses a lease below 3x the store's blocking wait.
    SQLITE_BUSY_TIMEOUT_MS: "500",
    LEASE_MS: String(leaseMs),
    EXECUTIONS_FILE: join(scratch.dir, "executions.log"),
    ...env,
  });
  servers.push(server);
  const client = paymentClient(server.baseUrl);
  clients.push(client);
  scratch.closeAfter(async () => {
    client.close();
    await server.kill();
  });
  return { server, client };
}

/** Calls until the answer is something else than REQUEST_IN_PROGRESS; returns every answer seen. */
async function callUntilAnswered(client: PaymentClient, requestId: string, deadline: number): Promise<string[]> {
  const seen: string[] = [];
  while (Date.now() < deadline) {
    const answer = await answerOf(client.client.createPayment(payment(requestId), { timeoutMs: 20_000 }));
    seen.push(answer);
    if (answer !== inProgress) {
      break;
    }
    await sleep(200);
  }
  return seen;
}

async function stored(requestId: string): Promise<string> {
  const store = createSqliteStore({ path: join(scratch.dir, "records.db"), busyTimeoutMs: 500, sweepIntervalMs: 0 });
  try {
    return await storedAnswer(store, requestId);
  } finally {
    await store.close();
  }
}

describe("a stalled owner", () => {
  it("whose event loop was blocked past lease and grace gets the successor's stored outcome or REQUEST_IN_PROGRESS, never its own", async () => {
    // A charges, then blocks its event loop for 8 s (0.5 s to 8.5 s): no
    // renewal after its claim at 0 s, so its lease ends at 3 s and the claim
    // may be taken over from 5 s (lease + grace). The 5 s block would
    // end right at 5.5 s; 8 s leaves B time to take over and store pay_B.
    const a = await start("A", { FIRST_BLOCK_MS: "8000", BLOCK_AFTER_MS: "500" });
    const b = await start("B", { MAX_WAIT_MS: "1000" });
    const requestId = crypto.randomUUID();
    const startedAt = Date.now();
    const ownerAnswer = answerOf(a.client.client.createPayment(payment(requestId), { timeoutMs: 60_000 }));
    await expect.poll(() => readExecutions(join(scratch.dir, "executions.log")).length, { timeout: 10_000 }).toBe(1);
    await sleep(1_000);
    const otherAnswers = await callUntilAnswered(b.client, requestId, startedAt + 40_000);
    const ownerSaw = await ownerAnswer;
    const storedNow = await stored(requestId);
    const late = [
      await answerOf(b.client.client.createPayment(payment(requestId))),
      await answerOf(a.client.client.createPayment(payment(requestId))),
    ];
    const executions = readExecutions(join(scratch.dir, "executions.log"));
    console.log(
      `stalled owner (blocked 8 s): executions ${JSON.stringify(executions)}; owner's caller saw "${ownerSaw}"; ` +
        `B's caller saw ${JSON.stringify(otherAnswers)}; stored "${storedNow}"; late retries ${JSON.stringify(late)}; ` +
        `events A ${JSON.stringify(eventCounts(a.server))} B ${JSON.stringify(eventCounts(b.server))}`,
    );
    // The takeover happened, correctly by the rules: B charged again.
    expect(executions.map((e) => [e.process, e.attempt, e.takeover])).toEqual([
      ["A", "1", "false"],
      ["B", "2", "true"],
    ]);
    expect(storedNow).toBe("ok pay_B_1");
    // The owner's caller never gets its own, superseded answer.
    expect(ownerSaw).not.toBe("ok pay_A_1");
    expect(["ok pay_B_1", inProgress]).toContain(ownerSaw);
    // Every caller's answer is the stored one (or a clear REQUEST_IN_PROGRESS).
    for (const answer of otherAnswers) {
      expect(["ok pay_B_1", inProgress]).toContain(answer);
    }
    expect(otherAnswers.at(-1)).toBe("ok pay_B_1");
    expect(late).toEqual(["ok pay_B_1", "ok pay_B_1"]);
  }, 90_000);

  it("that is merely slow (12 s, awaiting) keeps its claim by renewing: no takeover, one charge", async () => {
    const a = await start("A", { FIRST_DELAY_MS: "12000" });
    const b = await start("B");
    const requestId = crypto.randomUUID();
    const t0 = Date.now();
    const at = (ms: number) => sleep(Math.max(0, t0 + ms - Date.now()));
    const call = (c: PaymentClient) => answerOf(c.client.createPayment(payment(requestId), { timeoutMs: 30_000 }));
    const answers = await Promise.all([
      call(a.client),
      at(5_000).then(() => call(a.client)),
      at(5_000).then(() => call(b.client)),
      at(9_000).then(() => call(a.client)),
      at(9_000).then(() => call(b.client)),
    ]);
    const late = [await call(b.client), await call(a.client)];
    const executions = readExecutions(join(scratch.dir, "executions.log"));
    const storedNow = await stored(requestId);
    console.log(
      `slow owner (12 s): executions ${JSON.stringify(executions)}; answers ${JSON.stringify(answers)}; ` +
        `late ${JSON.stringify(late)}; stored "${storedNow}"; ` +
        `events A ${JSON.stringify(eventCounts(a.server))} B ${JSON.stringify(eventCounts(b.server))}`,
    );
    expect(executions.map((e) => e.process)).toEqual(["A"]);
    expect(answers[0]).toBe("ok pay_A_1");
    for (const answer of answers) {
      expect(["ok pay_A_1", inProgress]).toContain(answer);
    }
    expect(late).toEqual(["ok pay_A_1", "ok pay_A_1"]);
    expect(storedNow).toBe("ok pay_A_1");
    expect(eventCounts(a.server).claim_lost ?? 0).toBe(0);
    expect((eventCounts(a.server).takeover ?? 0) + (eventCounts(b.server).takeover ?? 0)).toBe(0);
  }, 90_000);
});
