import Database from "better-sqlite3";
import type { ChargeRow } from "./bank-service.js";
import type { DemoDatabaseFiles } from "./demo-server.js";
import { demoSequenceKey, type PaymentOutcome } from "./payment-load.js";
import type { PaymentRow } from "./payment-service.js";

/** What the client and the server counted during the run. */
export interface DemoCounters {
  /** Calls the generated client put on the network, first tries and retries. */
  attempts: number;
  /** Attempts the generated client repeated. */
  retries: number;
  /** Payment calls the server answered from the store without running the handler. */
  replays: number;
  /** Charges the bank answered from its store (a resumed payment asking again). */
  bankReplays: number;
  /** Duplicates that waited for the first call with their request ID to finish. */
  waits: number;
  /** Duplicates told REQUEST_IN_PROGRESS because the first call was still running. */
  conflicts: number;
  /** Calls that took over a claim whose process died. */
  takeovers: number;
}

/** A fresh set of counters. */
export function createDemoCounters(): DemoCounters {
  return { attempts: 0, retries: 0, replays: 0, bankReplays: 0, waits: 0, conflicts: 0, takeovers: 0 };
}

/** The rows the run left in the two databases. */
export interface DemoLedger {
  readonly payments: readonly Pick<PaymentRow, "payment_id" | "charge_id" | "metadata">[];
  readonly charges: readonly Pick<ChargeRow, "charge_id">[];
}

/** Reads the payments and charges tables after the server stopped. */
export function readDemoLedger(files: DemoDatabaseFiles): DemoLedger {
  const read = <T>(path: string, sql: string): T[] => {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      return db.prepare<[], T>(sql).all();
    } finally {
      db.close();
    }
  };
  return {
    payments: read(files.payments, "SELECT payment_id, charge_id, metadata FROM payments"),
    charges: read(files.bank, "SELECT charge_id FROM charges"),
  };
}

/** The demo's verdict and the figures behind it. */
export interface DemoReport {
  /** Whether the interceptors were on. */
  readonly idempotency: boolean;
  /** The seed that replays this run's faults and payments. */
  readonly seed: number;
  /** How often the server was killed with SIGKILL. */
  readonly crashes: number;
  /** Wall time of the load, in milliseconds. */
  readonly durationMs: number;
  /** Payments the load client asked for. */
  readonly asked: number;
  readonly counters: Readonly<DemoCounters>;
  /** Rows in the payments table. */
  readonly paymentsRecorded: number;
  /** Rows in the bank's charges table. */
  readonly chargesAtBank: number;
  /** Payment rows beyond the first of each request. */
  readonly extraPayments: number;
  /** Charges beyond the first of each request, plus charges no payment refers to. */
  readonly extraCharges: number;
  /**
   * Requests recorded or charged more than once, plus charges no payment
   * refers to (money taken for nothing recorded); must be 0.
   */
  readonly duplicates: number;
  /** Acknowledged to the client, but that payment is not in the table. */
  readonly acknowledgedNotRecorded: number;
  /** Calls that ended in an error: the client never learned the outcome. */
  readonly neverCompleted: number;
  /** Recorded payments whose charge the bank does not have. */
  readonly recordedNotCharged: number;
  /** The sum of the three above; must be 0. */
  readonly lost: number;
}

/** What `buildDemoReport` works from. */
export interface DemoReportInput {
  readonly idempotency: boolean;
  readonly seed: number;
  readonly crashes: number;
  readonly durationMs: number;
  readonly asked: number;
  readonly outcomes: readonly PaymentOutcome[];
  readonly counters: Readonly<DemoCounters>;
  readonly ledger: DemoLedger;
}

/**
 * Compares what the client asked for and was told with what the databases
 * hold. Every payment row carries its request's number in its metadata, so a
 * request recorded twice shows up however the rows were created.
 */
export function buildDemoReport(input: DemoReportInput): DemoReport {
  const chargeIds = new Set(input.ledger.charges.map((charge) => charge.charge_id));
  const requests = new Map<string, { rows: number; charges: Set<string> }>();
  const paymentIds = new Set<string>();
  const chargedByPayments = new Set<string>();
  let recordedNotCharged = 0;
  for (const row of input.ledger.payments) {
    paymentIds.add(row.payment_id);
    const seq = (JSON.parse(row.metadata) as Record<string, string>)[demoSequenceKey] ?? `row ${row.payment_id}`;
    let request = requests.get(seq);
    if (request === undefined) {
      request = { rows: 0, charges: new Set() };
      requests.set(seq, request);
    }
    request.rows++;
    if (chargeIds.has(row.charge_id)) {
      request.charges.add(row.charge_id);
      chargedByPayments.add(row.charge_id);
    } else {
      recordedNotCharged++;
    }
  }
  const orphanCharges = chargeIds.size - chargedByPayments.size;
  let extraCharges = orphanCharges;
  let duplicatedRequests = 0;
  for (const request of requests.values()) {
    extraCharges += Math.max(0, request.charges.size - 1);
    if (request.rows > 1 || request.charges.size > 1) {
      duplicatedRequests++;
    }
  }
  const acknowledgedNotRecorded = input.outcomes.filter(
    (outcome) =>
      outcome.kind === "acknowledged" && (!paymentIds.has(outcome.paymentId) || !requests.has(String(outcome.seq))),
  ).length;
  // Requests that never got an outcome count as never completed, too.
  const neverCompleted =
    input.outcomes.filter((outcome) => outcome.kind === "failed").length + (input.asked - input.outcomes.length);
  return {
    idempotency: input.idempotency,
    seed: input.seed,
    crashes: input.crashes,
    durationMs: input.durationMs,
    asked: input.asked,
    counters: { ...input.counters },
    paymentsRecorded: input.ledger.payments.length,
    chargesAtBank: input.ledger.charges.length,
    extraPayments: input.ledger.payments.length - requests.size,
    extraCharges,
    duplicates: duplicatedRequests + orphanCharges,
    acknowledgedNotRecorded,
    neverCompleted,
    recordedNotCharged,
    lost: acknowledgedNotRecorded + neverCompleted + recordedNotCharged,
  };
}

/** Whether the run kept every payment exactly once. */
export function isExactlyOnce(report: DemoReport): boolean {
  return report.duplicates === 0 && report.lost === 0;
}

/** The report as the terminal shows it. */
export function formatDemoReport(report: DemoReport): string {
  const c = report.counters;
  const rows: [string, number, string][] = [
    ["payments asked for", report.asked, ""],
    ["attempts", c.attempts, "calls the client put on the network"],
    ["retries", c.retries, "attempts the generated client repeated"],
    ["replays", c.replays, `answered from the store, handler not run (bank: ${count(c.bankReplays)})`],
    ["waits", c.waits, "retries that waited for the first call to finish"],
    ["in-progress conflicts", c.conflicts, "retries told REQUEST_IN_PROGRESS, tried again later"],
    ["takeovers", c.takeovers, "calls cut off by the crash, resumed by a retry"],
    ["payments recorded", report.paymentsRecorded, "rows in the payments table"],
    ["charges at the bank", report.chargesAtBank, "rows in the bank's charges table"],
    [
      "duplicates",
      report.duplicates,
      `requests recorded or charged twice or more (${count(report.extraPayments)} extra payment rows, ` +
        `${count(report.extraCharges)} extra charges)`,
    ],
    [
      "lost",
      report.lost,
      `${count(report.acknowledgedNotRecorded)} acknowledged but not recorded, ` +
        `${count(report.neverCompleted)} never completed` +
        (report.recordedNotCharged > 0 ? `, ${count(report.recordedNotCharged)} recorded but not charged` : ""),
    ],
  ];
  const width = Math.max(...rows.map(([, value]) => count(value).length));
  const lines = [
    "",
    `Idempotency ${report.idempotency ? "ON" : "OFF (--no-idempotency)"}, seed ${report.seed}, ` +
      `${crashes(report.crashes)}, ` +
      `${(report.durationMs / 1000).toFixed(1)} s`,
    "",
    ...rows.map(
      ([label, value, note]) => `  ${label.padEnd(22)} ${count(value).padStart(width)}${note ? `   ${note}` : ""}`,
    ),
    "",
    verdict(report),
    "",
  ];
  return lines.join("\n");
}

function verdict(report: DemoReport): string {
  if (isExactlyOnce(report)) {
    return report.idempotency
      ? `OK: every payment was recorded and charged exactly once, although ${count(report.counters.retries)} calls were retried.`
      : "OK: no duplicates this time, because no retry hit a call the server had already processed. Raise --drop-rate to see some.";
  }
  const problems = [
    report.duplicates > 0
      ? `${plural(report.duplicates, "duplicate")}: retries ran the handler again, recording payments and charging customers twice`
      : "",
    report.lost > 0 ? `${plural(report.lost, "payment")} lost` : "",
  ].filter((problem) => problem !== "");
  return report.idempotency
    ? `FAILED: ${problems.join("; ")}. With the interceptor on this is a bug: please report it with the seed.`
    : `FAILED: ${problems.join("; ")}. This is what the idempotency interceptor prevents: run without --no-idempotency to compare.`;
}

function crashes(times: number): string {
  if (times === 0) {
    return "server not killed (--no-crash)";
  }
  return `server killed with SIGKILL ${times === 1 ? "once" : `${times} times`} and restarted`;
}

function plural(value: number, noun: string): string {
  return `${count(value)} ${noun}${value === 1 ? "" : "s"}`;
}

function count(value: number): string {
  return value.toLocaleString("en-US");
}
