import Database from "better-sqlite3";
import type { ChargeRow } from "./charges-table.js";
import { quoteIdentifier } from "../src/store/postgres/postgres-identifier.js";
import type { DemoDatabaseFiles, DemoPostgres } from "./demo-stores.js";
import { connectPostgres } from "./postgres-client.js";
import { type FaultClass, type FaultLog, faultClasses } from "./fault-log.js";
import { demoSequenceKey, type PaymentOutcome } from "./payment-load.js";
import type { PaymentRow } from "./payments-table.js";

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
  /** Calls that took over a claim whose process died or whose handler failed indefinitely. */
  takeovers: number;
  /** Store operations that failed, answered UNAVAILABLE by the interceptor. */
  storeErrors: number;
}

/** A fresh set of counters. */
export function createDemoCounters(): DemoCounters {
  return { attempts: 0, retries: 0, replays: 0, bankReplays: 0, waits: 0, conflicts: 0, takeovers: 0, storeErrors: 0 };
}

/** The rows the run left in the two databases. */
export interface DemoLedger {
  readonly payments: readonly Pick<PaymentRow, "payment_id" | "request_id" | "charge_id" | "metadata">[];
  readonly charges: readonly Pick<ChargeRow, "charge_id" | "reference">[];
}

/** Reads the payments and charges tables after the servers stopped: from the SQLite files, or from the PostgreSQL schema. */
export async function readDemoLedger(source: DemoDatabaseFiles | DemoPostgres): Promise<DemoLedger> {
  const paymentsSql = "SELECT payment_id, request_id, charge_id, metadata FROM payments";
  const chargesSql = "SELECT charge_id, reference FROM charges";
  if ("url" in source) {
    const client = await connectPostgres(source.url);
    try {
      await client.query(`SET search_path TO ${quoteIdentifier(source.schema)}`);
      return {
        payments: (await client.query<DemoLedger["payments"][number]>(paymentsSql)).rows,
        charges: (await client.query<DemoLedger["charges"][number]>(chargesSql)).rows,
      };
    } finally {
      await client.end();
    }
  }
  const read = <T>(path: string, sql: string): T[] => {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      return db.prepare<[], T>(sql).all();
    } finally {
      db.close();
    }
  };
  return { payments: read(source.payments, paymentsSql), charges: read(source.bank, chargesSql) };
}

/** The demo's verdict and the figures behind it. */
export interface DemoReport {
  /** Whether the interceptors were on. */
  readonly idempotency: boolean;
  /** The seed that replays this run's faults and payments. */
  readonly seed: number;
  /** How often a server process was killed with SIGKILL. */
  readonly crashes: number;
  /** Server processes sharing the store. */
  readonly servers: number;
  /** What ran the store, for the headline, such as "SQLite". */
  readonly store: string;
  /** The lease of the demo's interceptors, in milliseconds. */
  readonly leaseMs: number;
  /** How long the store stall lasted, in milliseconds (0: none). */
  readonly stallMs: number;
  /** What each kind of fault did, in the order of `faultClasses`. */
  readonly faults: readonly FaultOutcome[];
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
  /** Why the calls that never completed failed: each distinct error with how many calls ended with it. */
  readonly failures: readonly { readonly error: string; readonly calls: number }[];
}

/** What one kind of fault did to the payments it hit. */
export interface FaultOutcome {
  readonly fault: FaultClass;
  /** Faults of this kind injected. */
  readonly injected: number;
  /** Payments (request IDs) hit by at least one of them. */
  readonly hit: number;
  /** Of those: one payment row, one charge, the row naming that charge, and an answer to the client. */
  readonly exactlyOnce: number;
  /** Of those: more than one payment row or more than one charge. */
  readonly duplicated: number;
}

/** What `buildDemoReport` works from. */
export interface DemoReportInput {
  readonly idempotency: boolean;
  readonly seed: number;
  readonly crashes: number;
  readonly servers: number;
  readonly store: string;
  readonly leaseMs: number;
  readonly stallMs: number;
  readonly faults: FaultLog;
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
    servers: input.servers,
    store: input.store,
    leaseMs: input.leaseMs,
    stallMs: input.stallMs,
    faults: faultOutcomes(input),
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
    failures: failuresOf(input.outcomes),
  };
}

function failuresOf(outcomes: readonly PaymentOutcome[]): { error: string; calls: number }[] {
  const calls = new Map<string, number>();
  for (const outcome of outcomes) {
    if (outcome.kind === "failed") {
      calls.set(outcome.error.message, (calls.get(outcome.error.message) ?? 0) + 1);
    }
  }
  return [...calls].map(([error, n]) => ({ error, calls: n }));
}

/**
 * Follows every payment a fault hit, by its request ID, to the rows it left:
 * payment rows carry it as `request_id`, charges as their `reference`.
 */
function faultOutcomes(input: DemoReportInput): FaultOutcome[] {
  const rowsOf = new Map<string, string[]>();
  for (const row of input.ledger.payments) {
    rowsOf.set(row.request_id, [...(rowsOf.get(row.request_id) ?? []), row.charge_id]);
  }
  const chargesOf = new Map<string, string[]>();
  for (const charge of input.ledger.charges) {
    chargesOf.set(charge.reference, [...(chargesOf.get(charge.reference) ?? []), charge.charge_id]);
  }
  const answered = new Set(
    input.outcomes.filter((outcome) => outcome.kind === "acknowledged").map((outcome) => outcome.paymentId),
  );
  const answeredRequests = new Set(
    input.ledger.payments.filter((row) => answered.has(row.payment_id)).map((row) => row.request_id),
  );
  return faultClasses.map((fault) => {
    let exactlyOnce = 0;
    let duplicated = 0;
    for (const requestId of input.faults.hit[fault]) {
      const rows = rowsOf.get(requestId) ?? [];
      const charges = chargesOf.get(requestId) ?? [];
      if (rows.length > 1 || charges.length > 1) {
        duplicated++;
      } else if (rows.length === 1 && charges[0] === rows[0] && answeredRequests.has(requestId)) {
        exactlyOnce++;
      }
    }
    return {
      fault,
      injected: input.faults.injected[fault],
      hit: input.faults.hit[fault].size,
      exactlyOnce,
      duplicated,
    };
  });
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
    ["takeovers", c.takeovers, "calls resumed by a retry after a crash or an indefinite error"],
    ["store errors", c.storeErrors, "store operations that failed, answered UNAVAILABLE"],
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
  const faultRows: [string, number, string][] = report.faults.map((outcome) => [
    faultLabels[outcome.fault],
    outcome.injected,
    `${faultNote(outcome.fault, report)}: ${plural(outcome.hit, "payment")} hit, ` +
      `${count(outcome.exactlyOnce)} ${outcome.fault === "bank_timeout" ? "recovered" : "exactly once"}, ` +
      `${count(outcome.duplicated)} duplicated`,
  ]);
  const width = Math.max(...[...rows, ...faultRows].map(([, value]) => count(value).length));
  const line = ([label, value, note]: [string, number, string]) =>
    `  ${label.padEnd(22)} ${count(value).padStart(width)}${note ? `   ${note}` : ""}`;
  const lines = [
    "",
    `Idempotency ${report.idempotency ? "ON" : "OFF (--no-idempotency)"}, seed ${report.seed}, ` +
      `${report.store}, ${report.servers} server processes, ${crashes(report.crashes)}, ` +
      `${(report.durationMs / 1000).toFixed(1)} s`,
    "",
    ...rows.map(line),
    ...report.failures.map(({ error, calls }) => `    ${plural(calls, "call")} failed with: ${error}`),
    "",
    "  Faults injected, and what became of the payments they hit:",
    ...faultRows.map(line),
    "",
    verdict(report),
    "",
  ];
  return lines.join("\n");
}

const faultLabels: Record<FaultClass, string> = {
  drop: "dropped responses",
  reset: "connection resets",
  delay: "late responses",
  bank_timeout: "bank timeouts",
  deadline: "client deadlines",
  crash: "server SIGKILLs",
  stall: "store stalls",
};

function faultNote(fault: FaultClass, report: DemoReport): string {
  switch (fault) {
    case "drop":
      return "response lost after the server ran the call";
    case "reset":
      return "connection reset before or after the server ran the call";
    case "delay":
      return "response arrived late";
    case "bank_timeout":
      return "the bank charged, then its answer was lost (UNAVAILABLE or DEADLINE_EXCEEDED)";
    case "deadline":
      return "the client's deadline expired while the handler ran; asked again with the same request ID";
    case "crash":
      return "a server process killed mid-call, then restarted";
    case "stall":
      return (
        `the payments store locked for ${seconds(report.stallMs)} by another connection, ` +
        `longer than the ${seconds(report.leaseMs)} lease`
      );
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
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
    return "no server killed (--no-crash)";
  }
  return `one killed with SIGKILL ${times === 1 ? "once" : `${times} times`} and restarted`;
}

function plural(value: number, noun: string): string {
  return `${count(value)} ${noun}${value === 1 ? "" : "s"}`;
}

function count(value: number): string {
  return value.toLocaleString("en-US");
}
