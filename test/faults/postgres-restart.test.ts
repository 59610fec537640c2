// A private PostgreSQL cluster restarted (twice) while a server process runs
// a bounded load: 2,000 calls on 1,000 request IDs (each ID called twice,
// mostly at the same time), 16 in flight, each call retried with its ID on
// failure. Short times instead of the issue's: lease 2 s, so that a restart
// (about 0.2 to 1 s here) is a sizeable part of it.
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPostgresStore } from "../../src/store/postgres/postgres-store.js";
import {
  answerOf,
  eventCounts,
  payment,
  paymentClient,
  type PaymentClient,
  readExecutions,
  startFaultServer,
  stopAll,
  storedAnswer,
} from "../support/fault-harness.js";
import { usePerTestScratch } from "../support/per-test-scratch.js";
import { type PrivateCluster, startPrivateCluster } from "../support/private-postgres-cluster.js";
import type { ServerProcess } from "../support/server-process.js";
import { type CutProxy, startCutProxy } from "../support/tcp-cut-proxy.js";

const scratch = usePerTestScratch("idempotency-pg-restart-");
const servers: ServerProcess[] = [];
const clients: PaymentClient[] = [];
let cluster: PrivateCluster;
let proxy: CutProxy | undefined;
beforeAll(async () => {
  cluster = await startPrivateCluster();
});
afterAll(async () => {
  await stopAll(servers, clients);
  await proxy?.close();
  await cluster?.remove();
});

const calls = 2_000;
const inFlight = 16;
const attemptsPerCall = 40;
const loadDeadlineMs = 60_000;

interface CallResult {
  readonly key: string;
  /** Every attempt's answer, in order. */
  readonly seen: string[];
}

async function oneCall(client: PaymentClient, key: string, deadline: number): Promise<CallResult> {
  const seen: string[] = [];
  for (let attempt = 0; attempt < attemptsPerCall && Date.now() < deadline; attempt++) {
    const answer = await answerOf(client.client.createPayment(payment(key, 20), { timeoutMs: 5_000 }));
    seen.push(answer);
    if (answer.startsWith("ok ")) {
      break;
    }
    await sleep(Math.min(100 * (attempt + 1), 500));
  }
  return { key, seen };
}

/**
 * Runs the load against a new server process on `table` (through `port`,
 * the cluster's own by default) and calls `disturb(i)` once the i-th of
 * `disturbAt` (fractions of the calls done) is reached; returns the figures
 * after checking nothing.
 */
async function runLoad(options: {
  label: string;
  table: string;
  port?: number;
  disturbAt: readonly number[];
  disturb: () => Promise<void>;
}) {
  const url = new URL(cluster.connectionString);
  url.port = String(options.port ?? cluster.port);
  const server = await startFaultServer({
    NAME: "A",
    IDEMPOTENCY_STORE: "postgres",
    POSTGRES_URL: url.toString(),
    POSTGRES_SCHEMA: "faults_restart",
    POSTGRES_TABLE: options.table,
    POSTGRES_CONNECTION_TIMEOUT_MS: "1000",
    LEASE_MS: "2000",
    EXECUTIONS_FILE: join(scratch.dir, "executions.log"),
  });
  servers.push(server);
  const client = paymentClient(server.baseUrl);
  clients.push(client);
  const keys = Array.from({ length: calls / 2 }, () => crypto.randomUUID());
  const deadline = Date.now() + loadDeadlineMs;
  const results: CallResult[] = [];
  let next = 0;
  const workers = Array.from({ length: inFlight }, async () => {
    while (next < calls) {
      const key = keys[Math.floor(next++ / 2)] ?? "";
      results.push(await oneCall(client, key, deadline));
    }
  });
  const disturbances: number[] = [];
  const disturber = (async () => {
    for (const fraction of options.disturbAt) {
      while (results.length < calls * fraction && Date.now() < deadline) {
        await sleep(10);
      }
      const startedAt = Date.now();
      await options.disturb();
      disturbances.push(Date.now() - startedAt);
    }
  })();
  const loadStartedAt = Date.now();
  await Promise.all([...workers, disturber]);
  const loadMs = Date.now() - loadStartedAt;

  const executions = readExecutions(join(scratch.dir, "executions.log"));
  const executionsOf = new Map<string, number>();
  for (const e of executions) {
    executionsOf.set(e.requestId, (executionsOf.get(e.requestId) ?? 0) + 1);
  }
  const answersOf = new Map<string, Set<string>>();
  for (const r of results) {
    for (const answer of r.seen.filter((a) => a.startsWith("ok "))) {
      answersOf.set(r.key, (answersOf.get(r.key) ?? new Set()).add(answer));
    }
  }
  // Pending completions land in the background: let them.
  await sleep(1_000);
  const store = await createPostgresStore({
    connectionString: cluster.connectionString,
    schema: "faults_restart",
    table: options.table,
    sweepIntervalMs: 0,
  });
  const stored = new Map<string, string>();
  try {
    for (const key of keys) {
      stored.set(key, await storedAnswer(store, key));
    }
  } finally {
    await store.close();
  }
  const events = eventCounts(server);
  const failedCalls = results.filter((r) => !(r.seen.at(-1) ?? "").startsWith("ok "));
  const errorsSeen = new Map<string, number>();
  for (const r of results) {
    for (const answer of r.seen.filter((a) => !a.startsWith("ok "))) {
      errorsSeen.set(answer, (errorsSeen.get(answer) ?? 0) + 1);
    }
  }
  const twice = [...executionsOf].filter(([, n]) => n > 1);
  const twoAnswers = [...answersOf].filter(([, set]) => set.size > 1);
  const differsFromStored = [...answersOf].filter(([key, set]) => !set.has(stored.get(key) ?? "") || set.size > 1);
  const storedValues = [...stored.values()];
  console.log(
    `${options.label}: ${results.length} calls in ${loadMs} ms, disturbances took ${disturbances.join(", ")} ms; ` +
      `executions ${executions.length} for ${executionsOf.size} keys (executed twice: ${twice.length}); ` +
      `keys answered: ${answersOf.size}, with two answers: ${twoAnswers.length}, differing from the stored one: ${differsFromStored.length}; ` +
      `calls failed after retries: ${failedCalls.length}; stored: ${storedValues.filter((s) => s.startsWith("ok ")).length} completed, ` +
      `${storedValues.filter((s) => !s.startsWith("ok ")).length} other; errors seen by callers ${JSON.stringify(Object.fromEntries(errorsSeen))}; ` +
      `events ${JSON.stringify(events)}`,
  );
  return { results, disturbances, events, twice, twoAnswers, differsFromStored };
}

describe("a PostgreSQL restart under load", () => {
  it.each(["fast", "immediate"] as const)(
    "(pg_ctl restart -m %s, twice) raises no false claim_lost, executes no key twice, and gives every key one answer",
    async (mode) => {
      const figures = await runLoad({
        label: `restart -m ${mode}`,
        table: `records_${mode}`,
        disturbAt: [1 / 4, 3 / 4],
        disturb: () => cluster.restart(mode),
      });
      expect(figures.results.length).toBe(calls);
      expect(figures.disturbances.length).toBe(2);
      expect(figures.events.claim_lost ?? 0).toBe(0);
      expect(figures.twice).toEqual([]);
      expect(figures.twoAnswers).toEqual([]);
      expect(figures.differsFromStored).toEqual([]);
    },
    120_000,
  );

  it("(stopped for 3 s while 96 handlers finish, 4 rounds) raises no false claim_lost: a renewal that finds the record completed by its own execution has lost nothing", async () => {
    // After the outage, each execution's pending completion and its lease
    // keeper's renewal retry at the same moment; a renewal that runs just
    // after the completion committed finds no running claim.
    const keyCount = 96;
    const rounds: { executions: number; events: Record<string, number> }[] = [];
    for (let round = 0; round < 4; round++) {
      const server = await startFaultServer({
        NAME: "A",
        IDEMPOTENCY_STORE: "postgres",
        POSTGRES_URL: cluster.connectionString,
        POSTGRES_SCHEMA: "faults_restart",
        POSTGRES_TABLE: `records_stopped_${round}`,
        POSTGRES_CONNECTION_TIMEOUT_MS: "1000",
        POSTGRES_MAX_CONNECTIONS: "60",
        LEASE_MS: "2000",
        EXECUTIONS_FILE: join(scratch.dir, `executions-${round}.log`),
      });
      servers.push(server);
      const client = paymentClient(server.baseUrl);
      clients.push(client);
      const keys = Array.from({ length: keyCount }, () => crypto.randomUUID());
      const deadline = Date.now() + 30_000;
      const calls = keys.map(async (key, i) => {
        while (Date.now() < deadline) {
          const answer = await answerOf(client.client.createPayment(payment(key, 500 + 25 * i), { timeoutMs: 1_000 }));
          if (answer.startsWith("ok ")) {
            return answer;
          }
          await sleep(300);
        }
        return "gave up";
      });
      await expect
        .poll(() => readExecutions(join(scratch.dir, `executions-${round}.log`)).length, { timeout: 10_000 })
        .toBe(keyCount);
      await cluster.stop();
      await sleep(3_000);
      await cluster.start();
      const answers = await Promise.all(calls);
      await sleep(1_000);
      rounds.push({
        executions: readExecutions(join(scratch.dir, `executions-${round}.log`)).length,
        events: eventCounts(server),
      });
      expect(answers.filter((a) => !a.startsWith("ok "))).toEqual([]);
      client.close();
      await server.kill();
    }
    console.log(`stopped 3 s, ${keyCount} keys per round: ${JSON.stringify(rounds)}`);
    for (const round of rounds) {
      expect(round.executions).toBe(keyCount);
      expect(round.events.takeover ?? 0).toBe(0);
      expect(round.events.completed).toBe(keyCount);
    }
    expect(rounds.map((r) => r.events.claim_lost ?? 0)).toEqual([0, 0, 0, 0]);
  }, 120_000);

  it("(connections cut after the database did the writes, 5 times: lost acknowledgements) raises no false claim_lost, executes no key twice, and gives every key one answer", async () => {
    // What a restart can do to a write in flight, made certain: the
    // database commits the completion, its answer is lost with the connection.
    proxy = await startCutProxy(cluster.port);
    const figures = await runLoad({
      label: "lost acknowledgements",
      table: "records_lost_acks",
      port: proxy.port,
      disturbAt: [0.15, 0.3, 0.45, 0.6, 0.75],
      disturb: () => proxy?.loseAnswers(150) ?? Promise.resolve(),
    });
    expect(figures.results.length).toBe(calls);
    expect(figures.events.claim_lost ?? 0).toBe(0);
    expect(figures.twice).toEqual([]);
    expect(figures.twoAnswers).toEqual([]);
    expect(figures.differsFromStored).toEqual([]);
  }, 120_000);
});
