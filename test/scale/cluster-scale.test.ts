// Several server processes behind one port (`runCluster`), sharing one
// SQLite file or one PostgreSQL schema: duplicates spread over processes run
// once, distinct calls run once each, a worker killed mid-handler is taken
// over after its lease, and (PostgreSQL) killed connections fail calls with
// UNAVAILABLE instead of running anything twice.
import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CreatePaymentRequestSchema, PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { ErrorReason } from "../../src/errors/error-reason.js";
import { findErrorReason } from "../../src/errors/idempotency-error.js";
import {
  createTestSchema,
  terminateBackends,
  testConnectionString,
  type TestSchema,
} from "../support/postgres-database.js";
import { type ServerProcess, startServerProcess } from "../support/server-process.js";
import { createTestTransport, transportVariants } from "../support/test-transports.js";

const workers = 4;
// Short enough for the takeover test to wait it out, long enough that a busy
// two-core machine never lets a live handler's lease lapse between renewals.
const leaseMs = 3_000;
// Connections, not calls, are spread over workers: many clients, one HTTP/2
// connection each, every protocol and codec among them.
const clientCount = 16;
const clusterScript = fileURLToPath(new URL("../support/payment-cluster-process.ts", import.meta.url));

type PaymentClient = Client<typeof PaymentService>;
type CreatePaymentInit = MessageInitShape<typeof CreatePaymentRequestSchema>;

interface Execution {
  readonly requestId: string;
  readonly pid: number;
  readonly takeover: boolean;
}

type Outcome = { readonly ok: true; readonly paymentId: string } | { readonly ok: false; readonly error: ConnectError };

function payment(requestId: string, delayMs = 0): CreatePaymentInit {
  return {
    requestId,
    accountId: "acct_scale",
    amountMinor: 1_250n,
    currency: "EUR",
    metadata: { delay_ms: String(delayMs) },
  };
}

async function call(client: PaymentClient, request: CreatePaymentInit): Promise<Outcome> {
  try {
    const response = await client.createPayment(request, { timeoutMs: 30_000 });
    return { ok: true, paymentId: response.payment?.paymentId ?? "" };
  } catch (error) {
    return { ok: false, error: ConnectError.from(error) };
  }
}

/** Calls until the answer is not REQUEST_IN_PROGRESS, as a retrying client would. */
async function callUntilSettled(client: PaymentClient, request: CreatePaymentInit): Promise<Outcome> {
  for (;;) {
    const outcome = await call(client, request);
    if (outcome.ok || findErrorReason(outcome.error) !== ErrorReason.REQUEST_IN_PROGRESS) {
      return outcome;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Runs `count` jobs with at most `concurrency` at once. */
async function runPool<T>(count: number, concurrency: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        results[i] = await job(i);
      }
    }),
  );
  return results;
}

interface StoreUnderTest {
  readonly name: string;
  /** The store's environment for the workers. */
  setUp(dir: string): Promise<Record<string, string>>;
  /** Checks, once every worker has stopped, that none left a store connection open. */
  expectConnectionsClosed(): Promise<void>;
  tearDown(): Promise<void>;
}

/** The running cluster of a `describeCluster` block, for tests added to it. */
interface ClusterUnderTest {
  /** One client per HTTP/2 connection, every protocol and codec among them. */
  readonly clients: readonly PaymentClient[];
  /** The handler runs the workers recorded for these request IDs, by request ID. */
  executionsOf(requestIds: Iterable<string>): Promise<Map<string, Execution[]>>;
}

let schema: TestSchema | undefined;
// Identifies this file's store connections, and only them, in pg_stat_activity.
const applicationName = `scale-${randomUUID().slice(0, 8)}`;

const postgres: StoreUnderTest = {
  name: "PostgreSQL",
  async setUp() {
    schema = await createTestSchema("scale");
    const url = new URL(testConnectionString);
    url.searchParams.set("application_name", applicationName);
    return { IDEMPOTENCY_STORE: "postgres", POSTGRES_URL: url.href, POSTGRES_SCHEMA: schema.name };
  },
  async expectConnectionsClosed() {
    // The server notices closed connections a moment after the client.
    const backends = async () =>
      (await schema!.admin.query("SELECT 1 FROM pg_stat_activity WHERE application_name = $1", [applicationName]))
        .rowCount;
    await expect.poll(backends, { timeout: 5_000 }).toBe(0);
  },
  async tearDown() {
    await schema?.drop();
  },
};

const sqlite: StoreUnderTest = {
  name: "SQLite",
  async setUp(dir) {
    return { IDEMPOTENCY_STORE: "sqlite", SQLITE_PATH: join(dir, "records.sqlite") };
  },
  // A file has no connections to outlive the workers.
  async expectConnectionsClosed() {},
  async tearDown() {},
};

/**
 * Starts a cluster on the store for the block's tests: the tests every
 * store passes, then `storeTests` (tests only this store can run, on the
 * same cluster), then a gentle stop.
 */
function describeCluster(
  storeUnderTest: StoreUnderTest,
  storeTests: (cluster: ClusterUnderTest) => void = () => {},
): void {
  describe(`${storeUnderTest.name}: 4 server processes behind one port`, () => {
    let dir: string;
    let cluster: ServerProcess;
    let clients: PaymentClient[];
    let executionsFile: string;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), "scale-"));
      executionsFile = join(dir, "executions.tsv");
      const storeEnv = await storeUnderTest.setUp(dir);
      cluster = await startServerProcess({
        script: clusterScript,
        env: {
          ...storeEnv,
          CLUSTER_WORKERS: String(workers),
          LEASE_MS: String(leaseMs),
          EXECUTIONS_FILE: executionsFile,
        },
        startTimeoutMs: 90_000,
      });
      clients = Array.from({ length: clientCount }, (_, i) =>
        createClient(
          PaymentService,
          createTestTransport(cluster.baseUrl, transportVariants[i % transportVariants.length]!),
        ),
      );
    }, 120_000);

    afterAll(async () => {
      await cluster?.kill("SIGTERM");
      await storeUnderTest.tearDown();
      await rm(dir, { recursive: true, force: true });
    });

    async function executions(): Promise<Execution[]> {
      const text = await readFile(executionsFile, "utf8").catch(() => "");
      return text
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => {
          const [, requestId, pid, takeover] = line.split("\t");
          return { requestId: requestId!, pid: Number(pid), takeover: takeover === "true" };
        });
    }

    async function executionsOf(requestIds: Iterable<string>): Promise<Map<string, Execution[]>> {
      const wanted = new Set(requestIds);
      const byKey = new Map<string, Execution[]>();
      for (const execution of await executions()) {
        if (wanted.has(execution.requestId)) {
          byKey.set(execution.requestId, [...(byKey.get(execution.requestId) ?? []), execution]);
        }
      }
      return byKey;
    }

    it("runs 500 concurrent duplicates spread over every process once", async () => {
      const requestId = randomUUID();
      // The handler runs long enough for every duplicate to arrive while it
      // runs: those in its process wait in memory, the others poll the store.
      const outcomes = await Promise.all(
        Array.from({ length: 500 }, (_, i) => call(clients[i % clientCount]!, payment(requestId, 300))),
      );
      const failures = outcomes.filter((outcome) => !outcome.ok);
      expect(failures).toEqual([]);
      const paymentIds = new Set(outcomes.map((outcome) => (outcome.ok ? outcome.paymentId : "")));
      expect(paymentIds.size).toBe(1);
      expect((await executionsOf([requestId])).get(requestId)).toHaveLength(1);
    });

    it("runs 5,000 distinct calls once each, on every process", async () => {
      const requestIds = Array.from({ length: 5_000 }, () => randomUUID());
      const started = performance.now();
      const outcomes = await runPool(requestIds.length, 32, (i) =>
        call(clients[i % clientCount]!, payment(requestIds[i]!)),
      );
      const seconds = (performance.now() - started) / 1000;
      console.log(
        `${storeUnderTest.name}: ${requestIds.length} distinct calls on ${workers} processes in ${seconds.toFixed(1)} s ` +
          `(${Math.round(requestIds.length / seconds)} calls/s)`,
      );
      expect(outcomes.filter((outcome) => !outcome.ok)).toEqual([]);
      const byKey = await executionsOf(requestIds);
      expect(byKey.size).toBe(requestIds.length);
      expect([...byKey.values()].filter((list) => list.length !== 1)).toEqual([]);
      expect(new Set([...byKey.values()].map((list) => list[0]!.pid)).size).toBe(workers);
    }, 180_000);

    it("lets another process take over the key of a worker killed mid-handler, after the lease", async () => {
      const requestId = randomUUID();
      const request = payment(requestId, 2_000);
      const first = call(clients[0]!, request);
      let victim: Execution | undefined;
      while (victim === undefined) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        victim = (await executionsOf([requestId])).get(requestId)?.[0];
      }
      process.kill(victim.pid, "SIGKILL");
      expect((await first).ok).toBe(false);
      // The client sees the reset before the cluster's primary has noticed
      // the death; until it has, it may still hand a new connection to the
      // dead worker, where it hangs. A real client's per-attempt deadline
      // would cover that; here we wait for the primary instead.
      await expect.poll(() => cluster.stdout(), { timeout: 20_000 }).toContain(`exit ${victim.pid} SIGKILL`);

      // A new connection lands on a live worker. It finds the dead worker's
      // claim, waits for the lease to run out, and takes the key over.
      const retryClient = createClient(PaymentService, createTestTransport(cluster.baseUrl, transportVariants[0]!));
      const retried = await callUntilSettled(retryClient, request);
      expect(retried.ok).toBe(true);
      const runs = (await executionsOf([requestId])).get(requestId) ?? [];
      expect(runs.map(({ takeover }) => takeover)).toEqual([false, true]);
      expect(runs[1]!.pid).not.toBe(victim.pid);

      // From now on the key replays, wherever the call lands.
      const replays = await Promise.all(clients.map((client) => call(client, request)));
      expect(replays).toEqual(clients.map(() => retried));
      expect((await executionsOf([requestId])).get(requestId)).toHaveLength(2);
      // The cluster replaced the dead worker.
      await expect.poll(() => cluster.stdout(), { timeout: 20_000 }).toMatch(/^forked \d+$/m);
    });

    storeTests({
      get clients() {
        return clients;
      },
      executionsOf,
    });

    it("stops every worker gently on SIGTERM", async () => {
      await cluster.kill("SIGTERM");
      expect(await cluster.exited).toBe(0);
      const exits = cluster.stdout().match(/^exit \d+ \S+$/gm) ?? [];
      // The killed worker, then every live one with code 0 after closing its store.
      expect(exits.slice(-workers)).toEqual(Array.from({ length: workers }, () => expect.stringMatching(/ 0$/)));
      await storeUnderTest.expectConnectionsClosed();
    });
  });
}

describeCluster(postgres, (cluster) => {
  describe("PostgreSQL store connections", () => {
    it("fails calls whose store connection is killed with UNAVAILABLE, never runs one twice, and recovers", async () => {
      const requestIds = Array.from({ length: 1_000 }, () => randomUUID());
      let done = 0;
      let killing = true;
      let terminated = 0;
      const killer = (async () => {
        while (done < 100) await new Promise((resolve) => setTimeout(resolve, 10));
        // Several rounds, so that connections die in every phase of a call.
        for (let round = 0; round < 5 && killing; round++) {
          terminated += await terminateBackends(schema!.admin, applicationName);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      })();
      const outcomes = await runPool(requestIds.length, 32, async (i) => {
        const outcome = await call(cluster.clients[i % clientCount]!, payment(requestIds[i]!, 5));
        done++;
        return outcome;
      });
      killing = false;
      await killer;
      expect(terminated).toBeGreaterThan(0);

      const failed = requestIds.filter((_, i) => !outcomes[i]!.ok);
      const succeeded = requestIds.filter((_, i) => outcomes[i]!.ok);
      console.log(
        `PostgreSQL: ${terminated} connections killed under load: ${failed.length} of ${requestIds.length} calls failed`,
      );
      expect(failed.length).toBeGreaterThan(0);
      for (const outcome of outcomes) {
        if (!outcome.ok) {
          expect([outcome.error.code, findErrorReason(outcome.error)]).toEqual([
            Code.Unavailable,
            ErrorReason.STORE_UNAVAILABLE,
          ]);
        }
      }
      // A failed call ran nothing; a successful one ran exactly once.
      const byKey = await cluster.executionsOf(requestIds);
      expect(failed.filter((requestId) => byKey.has(requestId))).toEqual([]);
      expect(succeeded.filter((requestId) => byKey.get(requestId)?.length !== 1)).toEqual([]);

      // The store recovered: retrying every failed call succeeds, and in
      // the end every request ran exactly once.
      const retried = await runPool(failed.length, 32, (i) =>
        callUntilSettled(cluster.clients[i % clientCount]!, payment(failed[i]!, 5)),
      );
      expect(retried.filter((outcome) => !outcome.ok)).toEqual([]);
      const finalByKey = await cluster.executionsOf(requestIds);
      expect(requestIds.filter((requestId) => finalByKey.get(requestId)?.length !== 1)).toEqual([]);
    }, 120_000);
  });
});

describeCluster(sqlite);

describe("runCluster", () => {
  it("stops and fails when a worker cannot start, instead of forking it again and again", async () => {
    const started = startServerProcess({
      script: clusterScript,
      env: {
        IDEMPOTENCY_STORE: "postgres",
        POSTGRES_URL: "postgres://postgres@127.0.0.1:1/none",
        CLUSTER_WORKERS: "2",
      },
      startTimeoutMs: 90_000,
    });
    await expect(started).rejects.toThrow(
      /exited with 1 before listening[\s\S]*a worker exited with code 1 before every worker listened/,
    );
  }, 120_000);
});
