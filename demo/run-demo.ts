import { rmSync } from "node:fs";
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { createPaymentServiceClient } from "../gen/demo/v1/payments_idempotency.js";
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
import { demoDatabaseFiles } from "./demo-server.js";
import { runPaymentLoad } from "./payment-load.js";
import { startServerProcess } from "./server-process.js";

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
// a busy machine) plus the lease of the calls it cut off, and a run of bad
// luck on the network: 20 attempts, backoff capped at one second.
const demoRetry = { maxAttempts: 20, initialBackoffMs: 50, maxBackoffMs: 1_000 } as const;

// A share of the responses that survive the network arrive late.
const demoDelay = { delayRate: 0.1, delayMs: 25 } as const;

/**
 * Runs the demo: the server in a child process, the generated client over a
 * hostile network, one SIGKILL of the server, then the report. Resolves to
 * the exit status: 0 only when no payment was duplicated or lost.
 */
export async function runDemo(options: DemoOptions, io: DemoIo): Promise<number> {
  const report = await runDemoLoad(options, io);
  io.stdout.write(formatDemoReport(report));
  return isExactlyOnce(report) ? 0 : 1;
}

async function runDemoLoad(options: DemoOptions, io: DemoIo): Promise<DemoReport> {
  const files = demoDatabaseFiles(options.dataDir);
  // Every run starts from empty tables, so that the report counts this run only.
  for (const file of Object.values(files)) {
    for (const suffix of ["", "-wal", "-shm"]) {
      rmSync(`${file}${suffix}`, { force: true });
    }
  }
  io.stderr.write(
    `Sending ${options.payments.toLocaleString("en-US")} payments through the generated client ` +
      `(concurrency ${options.concurrency}), idempotency ${options.idempotency ? "ON" : "OFF"}, seed ${options.seed}.\n` +
      `Network: ${percent(options.dropRate)} of responses dropped after the server processed the call, ` +
      `${percent(options.resetRate)} of connections reset, ${percent(demoDelay.delayRate)} delayed by ${demoDelay.delayMs} ms` +
      `${options.crash ? "; the server gets killed with SIGKILL once" : ""}.\n`,
  );
  const counters = createDemoCounters();
  const server = await startServerProcess({
    dataDir: options.dataDir,
    idempotency: options.idempotency,
    leaseMs: demoLeaseMs,
    onEvent(service, type) {
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
      }
    },
  });
  // One stream of numbers per purpose, so that the payments and the moment
  // of the crash do not depend on how the calls interleave.
  const paymentRandom = createSeededRandom(options.seed);
  const networkRandom = createSeededRandom(options.seed + 1);
  const crashAt = options.crash
    ? Math.max(1, Math.floor(options.payments * (0.3 + 0.3 * createSeededRandom(options.seed + 2)())))
    : undefined;

  const progress = createDemoProgress({ total: options.payments, stream: io.stderr, tty: io.tty });
  const figures = () => ({ done, retries: counters.retries, replays: counters.replays });
  let done = 0;
  let crashes = 0;
  let crash: Promise<void> | undefined;
  const started = performance.now();
  try {
    const network = createHostileTransport(
      createConnectTransport({ baseUrl: `http://127.0.0.1:${server.port}`, httpVersion: "2" }),
      { dropRate: options.dropRate, resetRate: options.resetRate, ...demoDelay, random: networkRandom },
    );
    const client = createPaymentServiceClient(countAttempts(network, () => counters.attempts++), {
      ...demoRetry,
      onRetry: () => {
        counters.retries++;
      },
    });
    const outcomes = await runPaymentLoad({
      client,
      payments: options.payments,
      concurrency: options.concurrency,
      random: paymentRandom,
      onOutcome(_, finished) {
        done = finished;
        progress.update(figures());
        if (finished === crashAt) {
          crashes++;
          progress.note("server killed with SIGKILL, restarting");
          const killedAt = performance.now();
          crash = server.crashAndRestart().then(() => {
            progress.note(`server back after ${Math.round(performance.now() - killedAt)} ms`);
          });
          // Awaited after the load; marked handled now, so a failed restart
          // does not end the process before the load notices.
          crash.catch(() => undefined);
        }
      },
    });
    await crash;
    const durationMs = performance.now() - started;
    progress.stop(figures());
    await server.stop();
    return buildDemoReport({
      idempotency: options.idempotency,
      seed: options.seed,
      crashes,
      durationMs,
      asked: options.payments,
      outcomes,
      counters,
      ledger: readDemoLedger(files),
    });
  } finally {
    await server.stop();
  }
}

/** A transport that counts the calls it carries. */
function countAttempts(inner: Transport, count: () => void): Transport {
  return {
    unary(...args) {
      count();
      return inner.unary(...args);
    },
    stream(...args) {
      count();
      return inner.stream(...args);
    },
  };
}

function percent(share: number): string {
  return `${Math.round(share * 1000) / 10} %`;
}
