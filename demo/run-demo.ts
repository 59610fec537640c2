import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { createPaymentServiceClient } from "../gen/demo/v1/payments_idempotency.js";
import type { IdempotencyEventType } from "../src/server/idempotency-event.js";
import { quoteIdentifier } from "../src/store/postgres/postgres-identifier.js";
import { createHostileTransport } from "../src/testing/hostile-transport.js";
import { createSeededRandom } from "../src/testing/seeded-random.js";
import type { DemoOptions } from "./demo-options.js";
import { createDemoProgress } from "./demo-progress.js";
import {
  buildDemoReport,
  createDemoCounters,
  type DemoReport,
  formatDemoReport,
  isExactlyOnce,
  readDemoLedger,
} from "./demo-report.js";
import type { DemoService } from "./demo-server.js";
import { type DemoDatabaseFiles, type DemoPostgres, demoDatabaseFiles, demoPostgresTables } from "./demo-stores.js";
import { createFaultLog, recordFault } from "./fault-log.js";
import { connectPostgres } from "./postgres-client.js";
import { runPaymentLoad } from "./payment-load.js";
import { type ServerProcess, startServerProcess } from "./server-process.js";
import { createSpreadTransport } from "./spread-transport.js";
import { stallPostgresStore, stallSqliteStore } from "./store-stall.js";

/** Where a run writes. */
export interface DemoIo {
  /** The report. */
  readonly stdout: NodeJS.WritableStream;
  /** Progress and notes. */
  readonly stderr: NodeJS.WritableStream;
  /** Whether stderr is a terminal that can show a live bar. */
  readonly tty: boolean;
}

// Short, so that the calls cut off by the SIGKILL are taken over within
// seconds; a running handler renews its lease every third of it.
const demoLeaseMs = 3_000;

// Patient enough to ride out the restart after the SIGKILL (a few seconds on
// a busy machine, while half the attempts still reach the dead process) plus
// the lease of the calls it cut off, the store stall, and a run of bad luck
// on the network: 20 attempts, backoff capped at one second.
const demoRetry = { maxAttempts: 20, initialBackoffMs: 50, maxBackoffMs: 1_000 } as const;

// A share of the responses that survive the network arrive late.
const demoDelay = { delayRate: 0.1, delayMs: 25 } as const;

// Every charge takes this long at the bank: the handler runs at least as long.
const demoBankLatencyMs = 20;

// The deadline of a share of the calls: shorter than the bank takes, so that
// it expires while the handler runs.
const demoDeadlineMs = 10;

// Longer than the lease: no claim can be renewed while the store is stalled.
const demoStallMs = 4_000;

// Two server processes on the same store, behind one load balancer.
const demoServers = 2;

/**
 * Runs the demo: two server processes on one store, the generated client
 * over a hostile network spreading its calls across both, one SIGKILL of a
 * server, one store stall, then the report. Resolves to the exit status: 0
 * only when no payment was duplicated or lost.
 */
export async function runDemo(options: DemoOptions, io: DemoIo): Promise<number> {
  const report = await runDemoLoad(options, io);
  io.stdout.write(formatDemoReport(report));
  return isExactlyOnce(report) ? 0 : 1;
}

async function runDemoLoad(options: DemoOptions, io: DemoIo): Promise<DemoReport> {
  const files = demoDatabaseFiles(options.dataDir);
  // Every run starts from empty tables, so that the report counts this run
  // only: SQLite files removed, or a PostgreSQL schema of its own.
  const postgres: DemoPostgres | undefined =
    options.store === "postgres"
      ? { url: options.postgres, schema: `demo_${randomBytes(4).toString("hex")}` }
      : undefined;
  if (postgres === undefined) {
    for (const file of Object.values(files)) {
      for (const suffix of ["", "-wal", "-shm"]) {
        rmSync(`${file}${suffix}`, { force: true });
      }
    }
  }
  try {
    return await runDemoOnStores(options, io, files, postgres);
  } finally {
    if (postgres !== undefined) {
      io.stderr.write(
        options.keep
          ? `PostgreSQL schema ${postgres.schema} kept (--keep); drop it with DROP SCHEMA ${postgres.schema} CASCADE.\n`
          : `PostgreSQL schema ${postgres.schema} dropped.\n`,
      );
      if (!options.keep) {
        await dropSchema(postgres);
      }
    }
  }
}

async function runDemoOnStores(
  options: DemoOptions,
  io: DemoIo,
  files: DemoDatabaseFiles,
  postgres: DemoPostgres | undefined,
): Promise<DemoReport> {
  const storeName = postgres === undefined ? "SQLite" : `PostgreSQL (schema ${postgres.schema})`;
  const skewText = `server 2's clock ${Math.abs(options.skewSeconds)} s ${options.skewSeconds > 0 ? "ahead" : "behind"}`;
  // Server 2 only: its clock disagrees with server 1's and the database's.
  const skew =
    options.skewSeconds === 0 || options.libfaketime === undefined
      ? undefined
      : {
          LD_PRELOAD: options.libfaketime,
          FAKETIME: `${options.skewSeconds > 0 ? "+" : ""}${options.skewSeconds}s`,
          // Timers (lease renewals, backoff) keep real time; only the wall clock is off.
          FAKETIME_DONT_FAKE_MONOTONIC: "1",
        };
  io.stderr.write(
    `Sending ${options.payments.toLocaleString("en-US")} payments through the generated client ` +
      `(concurrency ${options.concurrency}) to ${demoServers} server processes on one ${storeName} store` +
      `${skew === undefined ? "" : ` (${skewText})`}, ` +
      `idempotency ${options.idempotency ? "ON" : "OFF"}, seed ${options.seed}.\n` +
      `Network: ${percent(options.dropRate)} of responses dropped after the server processed the call, ` +
      `${percent(options.resetRate)} of connections reset, ${percent(demoDelay.delayRate)} delayed by ${demoDelay.delayMs} ms.\n` +
      `Bank: every charge takes ${demoBankLatencyMs} ms, ${percent(options.bankTimeoutRate)} time out after charging. ` +
      `Client: ${percent(options.deadlineRate)} of calls with a ${demoDeadlineMs} ms deadline.\n` +
      `Once each: ${options.crash ? "a server killed with SIGKILL" : "no SIGKILL (--no-crash)"}, ` +
      `${options.stall ? `the store stalled for ${demoStallMs / 1000} s (lease ${demoLeaseMs / 1000} s)` : "no stall (--no-stall)"}.\n`,
  );
  const counters = createDemoCounters();
  const faults = createFaultLog();
  const onEvent = (service: DemoService, type: IdempotencyEventType) => {
    if (type === "replayed") {
      if (service === "payments") {
        counters.replays++;
      } else {
        counters.bankReplays++;
      }
    } else if (type === "waited") {
      counters.waits++;
    } else if (type === "conflict") {
      counters.conflicts++;
    } else if (type === "takeover") {
      counters.takeovers++;
    } else if (type === "store_error") {
      counters.storeErrors++;
    }
  };
  // One after the other: both create the demo's tables at startup, and two
  // processes doing so at once on a new SQLite file collide (SQLITE_BUSY).
  const servers: ServerProcess[] = [];
  try {
    for (let index = 0; index < demoServers; index++) {
      servers.push(
        await startServerProcess({
          dataDir: options.dataDir,
          idempotency: options.idempotency,
          leaseMs: demoLeaseMs,
          bankLatencyMs: demoBankLatencyMs,
          bankTimeoutRate: options.bankTimeoutRate,
          // Far apart: neighbouring seeds give mulberry32 streams that start alike.
          seed: options.seed * 7 + 1_000_003 * (index + 1),
          postgres,
          ...(index === 1 && skew !== undefined ? { env: skew } : {}),
          onEvent,
          onBankTimeout: (reference) => recordFault(faults, "bank_timeout", [reference]),
        }),
      );
    }
  } catch (err) {
    await Promise.all(servers.map((server) => server.stop()));
    throw err;
  }
  if (skew !== undefined) {
    io.stderr.write(
      `Server 2's wall clock is ${(servers[1]!.clockOffsetMs / 1000).toFixed(1)} s off this process's (libfaketime); ` +
        "leases are timed by the database's clock, so it still agrees with server 1 on who holds a request ID.\n",
    );
  }
  // One stream of numbers per purpose, so that the payments and the moments
  // of the crash and the stall do not depend on how the calls interleave.
  const paymentRandom = createSeededRandom(options.seed);
  const networkRandom = createSeededRandom(options.seed + 1);
  const crashAt = options.crash
    ? Math.max(1, Math.floor(options.payments * (0.3 + 0.3 * createSeededRandom(options.seed + 2)())))
    : undefined;
  const spreadRandom = createSeededRandom(options.seed + 3);
  const stallAt = options.stall
    ? Math.max(1, Math.floor(options.payments * (0.65 + 0.2 * createSeededRandom(options.seed + 4)())))
    : undefined;

  const progress = createDemoProgress({ total: options.payments, stream: io.stderr, tty: io.tty });
  const figures = () => ({ done, retries: counters.retries, replays: counters.replays });
  let done = 0;
  let crashes = 0;
  let crash: Promise<void> | undefined;
  let stall: Promise<void> | undefined;
  let stalling = false;
  // The request ID of the attempt being sent: the hostile network picks its
  // fault synchronously as the attempt starts, so its onFault sees this one.
  let sending = "";
  const started = performance.now();
  try {
    const spread = createSpreadTransport(
      servers.map((server) => createConnectTransport({ baseUrl: `http://127.0.0.1:${server.port}`, httpVersion: "2" })),
      spreadRandom,
    );
    const network = createHostileTransport(spread, {
      dropRate: options.dropRate,
      resetRate: options.resetRate,
      ...demoDelay,
      random: networkRandom,
      onFault: (fault) =>
        recordFault(faults, fault === "reset-before" || fault === "reset-after" ? "reset" : fault, [sending]),
    });
    const client = createPaymentServiceClient(
      traceAttempts(network, (requestId) => {
        counters.attempts++;
        sending = requestId;
        if (stalling) {
          faults.hit.stall.add(requestId);
        }
      }),
      {
        ...demoRetry,
        onRetry: () => {
          counters.retries++;
        },
      },
    );
    const outcomes = await runPaymentLoad({
      client,
      payments: options.payments,
      concurrency: options.concurrency,
      random: paymentRandom,
      deadlines: {
        share: options.deadlineRate,
        timeoutMs: demoDeadlineMs,
        onExpired: (requestId) => recordFault(faults, "deadline", [requestId]),
      },
      onOutcome(_, finished) {
        done = finished;
        progress.update(figures());
        if (finished === crashAt) {
          crashes++;
          recordFault(faults, "crash", spread.inFlight(0));
          progress.note("server 1 killed with SIGKILL, restarting");
          const killedAt = performance.now();
          crash = servers[0]!.crashAndRestart().then(() => {
            progress.note(`server 1 back after ${Math.round(performance.now() - killedAt)} ms`);
          });
          // Awaited after the load; marked handled now, so a failed restart
          // does not end the process before the load notices.
          crash.catch(() => undefined);
        }
        if (finished === stallAt) {
          // After a restart still under way: a server cannot open a SQLite
          // store whose write lock another connection holds (createSqliteStore
          // fails after its busy timeout), and the restart would fail.
          stall = (crash ?? Promise.resolve()).then(async () => {
            stalling = true;
            recordFault(
              faults,
              "stall",
              servers.flatMap((_, index) => spread.inFlight(index)),
            );
            progress.note(
              `store stalled: another connection holds ${postgres === undefined ? "its write lock" : "a lock on its tables"} for ${demoStallMs / 1000} s`,
            );
            try {
              await (postgres === undefined
                ? stallSqliteStore(files.payments, demoStallMs)
                : // The store's records and the payments beside them, as SQLite's write lock covers the whole file.
                  stallPostgresStore(postgres, [demoPostgresTables.payments, "payments"], demoStallMs));
            } finally {
              stalling = false;
              progress.note("store stall over");
            }
          });
          // Awaited after the load, as the crash is.
          stall.catch(() => undefined);
        }
      },
    });
    await crash;
    await stall;
    const durationMs = performance.now() - started;
    progress.stop(figures());
    await Promise.all(servers.map((server) => server.stop()));
    return buildDemoReport({
      idempotency: options.idempotency,
      seed: options.seed,
      crashes,
      servers: demoServers,
      store: skew === undefined ? storeName : `${storeName}, ${skewText}`,
      leaseMs: demoLeaseMs,
      stallMs: stallAt === undefined ? 0 : demoStallMs,
      faults,
      durationMs,
      asked: options.payments,
      outcomes,
      counters,
      ledger: await readDemoLedger(postgres ?? files),
    });
  } finally {
    await Promise.all(servers.map((server) => server.stop()));
  }
}

async function dropSchema(postgres: DemoPostgres): Promise<void> {
  const client = await connectPostgres(postgres.url);
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${quoteIdentifier(postgres.schema)} CASCADE`);
  } finally {
    await client.end();
  }
}

/** A transport that reports the request ID of every unary attempt as it starts. */
function traceAttempts(inner: Transport, onAttempt: (requestId: string) => void): Transport {
  return {
    unary(method, signal, timeoutMs, header, input, contextValues) {
      const requestId = (input as { requestId?: unknown }).requestId;
      onAttempt(typeof requestId === "string" ? requestId : "");
      return inner.unary(method, signal, timeoutMs, header, input, contextValues);
    },
    stream(...args) {
      return inner.stream(...args);
    },
  };
}

function percent(share: number): string {
  return `${Math.round(share * 1000) / 10} %`;
}
