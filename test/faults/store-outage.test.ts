// PostgreSQL outages longer than the lease, while handlers run and their
// callers retry with the same request IDs. Short times instead of the
// issue's (30 s lease, 40 s lock): lease 2 s (grace at its default, 2 s),
// outages of 6 to 10 s, so that each test takes seconds.
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createPostgresStore } from "../../src/store/postgres/postgres-store.js";
import {
  answerOf,
  eventCounts,
  executionsPerKey,
  payment,
  paymentClient,
  type PaymentClient,
  readExecutions,
  startFaultServer,
  stopAll,
  storedAnswer,
} from "../support/fault-harness.js";
import { usePerTestScratch } from "../support/per-test-scratch.js";
import { createTestSchema, type TestSchema, testConnectionString } from "../support/postgres-database.js";
import { type PrivateCluster, startPrivateCluster } from "../support/private-postgres-cluster.js";
import type { ServerProcess } from "../support/server-process.js";
import { startCutProxy, type CutProxy } from "../support/tcp-cut-proxy.js";

const scratch = usePerTestScratch("idempotency-outage-");
const servers: ServerProcess[] = [];
const clients: PaymentClient[] = [];
let schema: TestSchema;
let cluster: PrivateCluster | undefined;
let proxy: CutProxy | undefined;
beforeAll(async () => {
  schema = await createTestSchema("faults_outage");
});
afterAll(async () => {
  await stopAll(servers, clients);
  await proxy?.close();
  await cluster?.remove();
  await schema?.drop();
});

const leaseMs = 2_000;
const keyCount = 8;

async function start(
  name: string,
  env: Record<string, string>,
): Promise<{ server: ServerProcess; client: PaymentClient }> {
  const server = await startFaultServer({
    NAME: name,
    IDEMPOTENCY_STORE: "postgres",
    LEASE_MS: String(leaseMs),
    EXECUTIONS_FILE: join(scratch.dir, "executions.log"),
    ...env,
  });
  servers.push(server);
  const client = paymentClient(server.baseUrl);
  clients.push(client);
  return { server, client };
}

interface CallerLog {
  /** `<process> <answer>` for every attempt, in order. */
  readonly seen: string[];
  /** When each attempt was answered, in seconds since the test began. */
  readonly at: string[];
  readonly final: string;
}

let testStartedAt = 0;
beforeEach(() => {
  testStartedAt = Date.now();
});

/**
 * One caller: calls with a 1 s deadline (shorter than the handlers, so that
 * retries also come after the execution finished) and, after a failure, retries with
 * the same request ID (first after `firstPauseMs`, then every 0.5 s) until it
 * gets a success or 60 s have passed: retries reach the store while it is
 * out, and queue on the lock. `target(n)` picks the process of attempt n.
 */
async function payWithRetries(
  target: (attempt: number) => { name: string; client: PaymentClient },
  requestId: string,
  delayMs: number,
  firstPauseMs = 500,
): Promise<CallerLog> {
  const seen: string[] = [];
  const at: string[] = [];
  const deadline = Date.now() + 60_000;
  for (let n = 0; Date.now() < deadline; n++) {
    const { name, client } = target(n);
    const answer = await answerOf(client.client.createPayment(payment(requestId, delayMs), { timeoutMs: 1_000 }));
    seen.push(`${name} ${answer}`);
    at.push(((Date.now() - testStartedAt) / 1000).toFixed(1));
    if (answer.startsWith("ok ")) {
      return { seen, at, final: answer };
    }
    await sleep(n === 0 ? firstPauseMs : 500);
  }
  return { seen, at, final: seen.at(-1) ?? "none" };
}

/**
 * The stored outcome of every key, once every record is completed (pending
 * completions are retried in the background after an outage) or 30 s passed.
 */
async function storedAnswers(connectionString: string, table: string, keys: readonly string[]): Promise<string[]> {
  const store = await createPostgresStore({ connectionString, schema: schema.name, table, sweepIntervalMs: 0 });
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const answers = await Promise.all(keys.map((key) => storedAnswer(store, key)));
      if (answers.every((a) => a.startsWith("ok ")) || Date.now() > deadline) {
        return answers;
      }
      await sleep(250);
    }
  } finally {
    await store.close();
  }
}

/** Handler times 1 s to 5.2 s: spreads the completions (and their retries) over the outage. */
const delayOf = (i: number) => 1_000 + 600 * i;

describe("a store outage longer than the lease", () => {
  it("(one process, records table locked for 10 s) runs every key once; every caller's final answer is the stored one", async () => {
    const table = "records_lock";
    const a = await start("A", {
      POSTGRES_URL: testConnectionString,
      POSTGRES_SCHEMA: schema.name,
      POSTGRES_TABLE: table,
      // Shorter than the lock, so that completions and claims fail and are
      // retried during it rather than wait it out (as with the 40 s
      // lock and the default 5 s statement timeout).
      POSTGRES_STATEMENT_TIMEOUT_MS: "1000",
      // Enough connections that retried claims queue on the lock beside the
      // renewals and completions, instead of waiting for a free connection.
      POSTGRES_MAX_CONNECTIONS: "40",
    });
    const keys = Array.from({ length: keyCount }, () => crypto.randomUUID());
    // The first retry comes after every handler finished and its first
    // completion attempt failed (by 6.5 s), so that retries find the
    // execution over, not running; they then queue on the lock beside the
    // owner's renewals and completion retries.
    const calls = keys.map((key, i) => payWithRetries(() => ({ name: "A", client: a.client }), key, delayOf(i), 6_000));
    await expect
      .poll(() => readExecutions(join(scratch.dir, "executions.log")).length, { timeout: 10_000 })
      .toBe(keyCount);
    // Lock our own table (in our own schema) from the test's admin pool.
    const locker = await schema.admin.connect();
    const startedAt = Date.now();
    try {
      await locker.query("BEGIN");
      await locker.query("SET LOCAL lock_timeout = '5s'");
      await locker.query(`LOCK TABLE ${schema.name}.${table} IN ACCESS EXCLUSIVE MODE`);
      await sleep(10_000);
      await locker.query("COMMIT");
    } finally {
      locker.release();
    }
    const lockedMs = Date.now() - startedAt;
    const callers = await Promise.all(calls);
    const executions = executionsPerKey(join(scratch.dir, "executions.log"), keys);
    const stored = await storedAnswers(testConnectionString, table, keys);
    const events = eventCounts(a.server);
    report("locked table, one process", lockedMs, keys, executions, callers, stored, { A: events });
    expect(executions).toEqual(keys.map(() => 1));
    expect(events.takeover ?? 0).toBe(0);
    expect(events.claim_lost ?? 0).toBe(0);
    expect(callers.map((c) => c.final)).toEqual(stored);
    for (const answer of stored) {
      expect(answer).toMatch(/^ok pay_A_\d+$/);
    }
    expectNoSecondSuccess(callers, stored);
  }, 120_000);

  it("(one process, its private PostgreSQL stopped for 6 s) runs every key once; every caller's final answer is the stored one", async () => {
    cluster = await startPrivateCluster();
    const table = "records_down";
    const a = await start("A", {
      POSTGRES_URL: cluster.connectionString,
      POSTGRES_SCHEMA: schema.name,
      POSTGRES_TABLE: table,
      POSTGRES_CONNECTION_TIMEOUT_MS: "1000",
    });
    const keys = Array.from({ length: keyCount }, () => crypto.randomUUID());
    const calls = keys.map((key, i) => payWithRetries(() => ({ name: "A", client: a.client }), key, delayOf(i)));
    await expect
      .poll(() => readExecutions(join(scratch.dir, "executions.log")).length, { timeout: 10_000 })
      .toBe(keyCount);
    const startedAt = Date.now();
    await cluster.stop();
    await sleep(6_000);
    await cluster.start();
    const downMs = Date.now() - startedAt;
    const callers = await Promise.all(calls);
    const executions = executionsPerKey(join(scratch.dir, "executions.log"), keys);
    const stored = await storedAnswers(cluster.connectionString, table, keys);
    const events = eventCounts(a.server);
    report("database stopped, one process", downMs, keys, executions, callers, stored, { A: events });
    expect(executions).toEqual(keys.map(() => 1));
    expect(events.takeover ?? 0).toBe(0);
    expect(events.claim_lost ?? 0).toBe(0);
    expect(callers.map((c) => c.final)).toEqual(stored);
    for (const answer of stored) {
      expect(answer).toMatch(/^ok pay_A_\d+$/);
    }
    expectNoSecondSuccess(callers, stored);
  }, 120_000);

  it("(two processes, the owner cut off for lease + grace + 3 s) never gives callers of one process two answers; one outcome is stored", async () => {
    // The documented remaining limit: an owner cut off for longer than lease
    // plus grace can be taken over by another process, which runs the
    // handler again. Only what the rules guarantee is asserted; the figures
    // are printed.
    proxy = await startCutProxy(
      new URL(testConnectionString).port === "" ? 5432 : Number(new URL(testConnectionString).port),
    );
    const viaProxy = new URL(testConnectionString);
    viaProxy.port = String(proxy.port);
    const table = "records_cut";
    const common = { POSTGRES_SCHEMA: schema.name, POSTGRES_TABLE: table, POSTGRES_CONNECTION_TIMEOUT_MS: "1000" };
    const a = await start("A", { ...common, POSTGRES_URL: viaProxy.toString() });
    const b = await start("B", { ...common, POSTGRES_URL: testConnectionString });
    const targets = [
      { name: "A", client: a.client },
      { name: "B", client: b.client },
    ];
    const keys = Array.from({ length: keyCount }, () => crypto.randomUUID());
    // The first call goes to A; retries alternate B, A, B...
    const calls = keys.map((key, i) => payWithRetries((n) => targets[n % 2] ?? targets[0]!, key, delayOf(i)));
    await expect
      .poll(() => readExecutions(join(scratch.dir, "executions.log")).length, { timeout: 10_000 })
      .toBe(keyCount);
    const startedAt = Date.now();
    proxy.cut();
    await sleep(leaseMs + 2_000 + 3_000);
    proxy.heal();
    const cutMs = Date.now() - startedAt;
    console.log(
      `cut from ${((startedAt - testStartedAt) / 1000).toFixed(1)}s to ${((Date.now() - testStartedAt) / 1000).toFixed(1)}s`,
    );
    const callers = await Promise.all(calls);
    // Late duplicates to both processes, once everything settled.
    await sleep(1_000);
    const late = await Promise.all(
      keys.map(async (key, i) => [
        `A ${await answerOf(a.client.client.createPayment(payment(key, delayOf(i)), { timeoutMs: 10_000 }))}`,
        `B ${await answerOf(b.client.client.createPayment(payment(key, delayOf(i)), { timeoutMs: 10_000 }))}`,
      ]),
    );
    const executions = executionsPerKey(join(scratch.dir, "executions.log"), keys);
    const stored = await storedAnswers(testConnectionString, table, keys);
    report("owner cut off, two processes", cutMs, keys, executions, callers, stored, {
      A: eventCounts(a.server),
      B: eventCounts(b.server),
    });
    console.log(`late duplicates: ${JSON.stringify(late)}`);
    for (const [i, caller] of callers.entries()) {
      for (const process of ["A", "B"]) {
        const successes = new Set(
          [...caller.seen, ...(late[i] ?? [])].filter((s) => s.startsWith(`${process} ok `)).map((s) => s.slice(2)),
        );
        expect(
          successes.size,
          `key ${i}: answers of process ${process}: ${[...successes].join(", ")}`,
        ).toBeLessThanOrEqual(1);
      }
      expect(stored[i]).toMatch(/^ok pay_[AB]_\d+$/);
    }
  }, 120_000);
});

function report(
  label: string,
  outageMs: number,
  keys: readonly string[],
  executions: readonly number[],
  callers: readonly CallerLog[],
  stored: readonly string[],
  events: Record<string, Record<string, number>>,
): void {
  const lines = keys.map(
    (key, i) =>
      `  key ${i} ${key.slice(0, 8)}: executions ${executions[i]}, stored "${stored[i]}", caller saw ` +
      JSON.stringify(callers[i]?.seen.map((answer, n) => `${callers[i]?.at[n]}s ${answer}`)),
  );
  console.log(
    `${label} (outage ${outageMs} ms): executions per key ${executions.join(" ")}\n${lines.join("\n")}\n  events ${JSON.stringify(events)}`,
  );
}

/** No caller ever got a success other than the stored outcome of its key. */
function expectNoSecondSuccess(callers: readonly CallerLog[], stored: readonly string[]): void {
  for (const [i, caller] of callers.entries()) {
    for (const seen of caller.seen) {
      const answer = seen.slice(seen.indexOf(" ") + 1);
      if (answer.startsWith("ok ")) {
        expect(answer, `key ${i}`).toBe(stored[i]);
      }
    }
  }
}
