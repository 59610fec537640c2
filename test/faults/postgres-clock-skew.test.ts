// Two server processes on one PostgreSQL table, one of them with its clock
// skewed by libfaketime (Date.now() only; timers keep the real monotonic
// clock). Leases and expiry must follow the database's clock, whatever the
// application's. Short times instead of the issue's: lease 3 s (renewed every
// second), handler 5 s, retention 10 min.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  answerOf,
  eventCounts,
  payment,
  paymentClient,
  type PaymentClient,
  readExecutions,
  startFaultServer,
  stopAll,
} from "../support/fault-harness.js";
import { usePerTestScratch } from "../support/per-test-scratch.js";
import { createTestSchema, type TestSchema, testConnectionString } from "../support/postgres-database.js";
import { retryWhileInProgress } from "../support/retry-while-in-progress.js";
import type { ServerProcess } from "../support/server-process.js";

const libfaketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const scratch = usePerTestScratch("idempotency-skew-");
const servers: ServerProcess[] = [];
const clients: PaymentClient[] = [];
let schema: TestSchema;
let tables = 0;
beforeAll(async () => {
  if (!existsSync(libfaketime)) {
    throw new Error(`${libfaketime} is missing: apt-get install -y faketime`);
  }
  schema = await createTestSchema("faults_skew");
});
afterAll(async () => {
  await stopAll(servers, clients);
  await schema?.drop();
});

const retentionMs = 600_000;
const handlerMs = 5_000;

async function start(name: string, table: string, faketime: string | undefined) {
  const server = await startFaultServer({
    NAME: name,
    IDEMPOTENCY_STORE: "postgres",
    POSTGRES_URL: testConnectionString,
    POSTGRES_SCHEMA: schema.name,
    POSTGRES_TABLE: table,
    LEASE_MS: "3000",
    RETENTION_MS: String(retentionMs),
    // No tombstone: `expires_at` is then the end of the retention this test checks.
    TOMBSTONE_RETENTION_MS: "0",
    EXECUTIONS_FILE: join(scratch.dir, "executions.log"),
    ...(faketime === undefined
      ? {}
      : { LD_PRELOAD: libfaketime, FAKETIME: faketime, FAKETIME_DONT_FAKE_MONOTONIC: "1" }),
  });
  servers.push(server);
  const client = paymentClient(server.baseUrl);
  clients.push(client);
  scratch.closeAfter(async () => {
    client.close();
    await server.kill();
  });
  return { name, server, client };
}

/**
 * The record's `expires_at` minus the database's `clock_timestamp()`, in ms,
 * whichever way the table stores times (epoch milliseconds or timestamptz).
 */
async function expiresInByDatabase(table: string, key: string): Promise<number> {
  const { rows: types } = await schema.admin.query<{ data_type: string }>(
    "SELECT data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 AND column_name = 'expires_at'",
    [schema.name, table],
  );
  const expiresMs = types[0]?.data_type === "bigint" ? "expires_at::float8" : "extract(epoch FROM expires_at) * 1000";
  const { rows } = await schema.admin.query<{ expires_in: number }>(
    `SELECT ${expiresMs} - extract(epoch FROM clock_timestamp()) * 1000 AS expires_in FROM ${schema.name}.${table} WHERE key = $1`,
    [key],
  );
  return Number(rows[0]?.expires_in);
}

const skews = [
  { label: "60 s ahead", faketime: "+60s" },
  { label: "60 s behind", faketime: "-60s" },
  { label: "1 h ahead", faketime: "+1h" },
];

describe.each(skews)("one process's clock $label", ({ faketime }) => {
  it.each([
    { owner: "skewed", duplicate: "normal" },
    { owner: "normal", duplicate: "skewed" },
  ])(
    "a live claim by the $owner process is never taken over by the $duplicate one, and the record expires after the retention by the database's clock",
    async ({ owner }) => {
      const table = `records_${++tables}`;
      const normal = await start("N", table, undefined);
      const skewed = await start("S", table, faketime);
      const [first, second] = owner === "skewed" ? [skewed, normal] : [normal, skewed];
      const requestId = crypto.randomUUID();
      const firstAnswer = answerOf(
        first.client.client.createPayment(payment(requestId, handlerMs), { timeoutMs: 30_000 }),
      );
      await expect
        .poll(() => readExecutions(join(scratch.dir, "executions.log")).some((e) => e.requestId === requestId), {
          timeout: 10_000,
        })
        .toBe(true);
      // The duplicate arrives while the owner's handler runs (and renews).
      const duplicateAnswer = await answerOf(
        retryWhileInProgress(() =>
          second.client.client.createPayment(payment(requestId, handlerMs), { timeoutMs: 30_000 }),
        ),
      );
      const ownerAnswer = await firstAnswer;
      const expiresIn = await expiresInByDatabase(table, requestId);
      const executions = readExecutions(join(scratch.dir, "executions.log")).filter((e) => e.requestId === requestId);
      console.log(
        `skew ${faketime}, owner ${owner}: executions ${executions.map((e) => `${e.process}(${e.paymentId})`).join(" ")}; ` +
          `owner's caller "${ownerAnswer}", duplicate's caller "${duplicateAnswer}"; ` +
          `expires_at - db clock_timestamp() = ${Math.round(expiresIn)} ms (retention ${retentionMs}); ` +
          `events ${first.name} ${JSON.stringify(eventCounts(first.server))} ${second.name} ${JSON.stringify(eventCounts(second.server))}`,
      );
      expect(executions.map((e) => e.process)).toEqual([first.name]);
      expect(ownerAnswer).toBe(`ok pay_${first.name}_1`);
      expect(duplicateAnswer).toBe(ownerAnswer);
      expect(Math.abs(expiresIn - retentionMs)).toBeLessThan(1_000);
    },
    60_000,
  );
});
