import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { createTempDataDir, reportFigure, runDemoProcess } from "./demo-process.js";

// Rows per request number (the load puts it in the metadata), read straight
// from the databases the demo leaves behind, not from its own report.
function rowsPerRequest(dataDir: string): { payments: number[]; charges: number } {
  const payments = new Database(join(dataDir, "payments.sqlite"), { readonly: true });
  const bank = new Database(join(dataDir, "bank.sqlite"), { readonly: true });
  try {
    const perRequest = payments
      .prepare<[], { n: number }>(
        "SELECT count(*) AS n FROM payments GROUP BY json_extract(metadata, '$.demo_seq') ORDER BY 1",
      )
      .all()
      .map((row) => row.n);
    const charges = bank.prepare<[], { n: number }>("SELECT count(*) AS n FROM charges").get()!.n;
    return { payments: perRequest, charges };
  } finally {
    payments.close();
    bank.close();
  }
}

// The fault rows of the report, by label: how many were injected, and what
// became of the payments they hit.
const faultLabels = [
  "dropped responses",
  "connection resets",
  "late responses",
  "bank timeouts",
  "client deadlines",
  "server SIGKILLs",
  "store stalls",
] as const;

function faultRow(report: string, label: string): { injected: number; hit: number; fine: number; duplicated: number } {
  const match = new RegExp(
    `^ {2}${label} +([\\d,]+) +.*: ([\\d,]+) payments? hit, ([\\d,]+) (?:exactly once|recovered), ([\\d,]+) duplicated$`,
    "m",
  ).exec(report);
  if (match === null) {
    throw new Error(`no fault row "${label}" in the report:\n${report}`);
  }
  const [injected, hit, fine, duplicated] = match.slice(1).map((figure) => Number(figure!.replaceAll(",", "")));
  return { injected: injected!, hit: hit!, fine: fine!, duplicated: duplicated! };
}

describe("npm start", () => {
  let dataDir: ReturnType<typeof createTempDataDir> | undefined;
  afterEach(() => dataDir?.remove());

  it("keeps every payment exactly once through every fault it injects, on two server processes", async () => {
    dataDir = createTempDataDir();
    const exit = await runDemoProcess(["-n", "400", "-c", "16", "--seed", "7", "--data-dir", dataDir.path]);
    expect(exit.status, `${exit.stdout}\n${exit.stderr}`).toBe(0);
    expect(reportFigure(exit.stdout, "payments asked for")).toBe(400);
    expect(reportFigure(exit.stdout, "duplicates")).toBe(0);
    expect(reportFigure(exit.stdout, "lost")).toBe(0);
    expect(reportFigure(exit.stdout, "payments recorded")).toBe(400);
    expect(reportFigure(exit.stdout, "charges at the bank")).toBe(400);
    // The network really was hostile, and the interceptor really answered retries.
    expect(reportFigure(exit.stdout, "retries")).toBeGreaterThan(0);
    expect(reportFigure(exit.stdout, "replays")).toBeGreaterThan(0);
    // The stall made store operations fail; the bank timeouts were taken over.
    expect(reportFigure(exit.stdout, "store errors")).toBeGreaterThan(0);
    expect(reportFigure(exit.stdout, "takeovers")).toBeGreaterThan(0);
    // Every fault class was injected and hit payments, and each of them ended exactly once.
    for (const label of faultLabels) {
      const row = faultRow(exit.stdout, label);
      expect(row.injected, label).toBeGreaterThan(0);
      expect(row.hit, label).toBeGreaterThan(0);
      expect(row, label).toMatchObject({ fine: row.hit, duplicated: 0 });
    }
    expect(exit.stdout).toContain("SQLite, 2 server processes, one killed with SIGKILL once and restarted");
    expect(exit.stdout).toContain("OK: every payment was recorded and charged exactly once");
    // Without a TTY: plain progress lines, and the kill and the stall announced.
    expect(exit.stderr).toMatch(/^payments 400\/400, retries \d+, replays \d+$/m);
    expect(exit.stderr).toContain("server 1 killed with SIGKILL, restarting");
    expect(exit.stderr).toContain("store stalled: another connection holds its write lock for 4 s");
    expect(exit.stderr).not.toContain("\u001b[");

    const rows = rowsPerRequest(dataDir.path);
    expect(rows.payments).toHaveLength(400);
    expect(rows.payments.every((n) => n === 1)).toBe(true);
    expect(rows.charges).toBe(400);
  }, 120_000);

  it("shows the duplicates with --no-idempotency, caused by several kinds of fault, and exits non-zero", async () => {
    dataDir = createTempDataDir();
    const exit = await runDemoProcess([
      "-n",
      "200",
      "-c",
      "16",
      "--seed",
      "7",
      "--drop-rate",
      "0.2",
      "--bank-timeout-rate",
      "0.1",
      "--deadline-rate",
      "0.1",
      "--no-crash",
      "--no-stall",
      "--no-idempotency",
      "--data-dir",
      dataDir.path,
    ]);
    expect(exit.status, `${exit.stdout}\n${exit.stderr}`).toBe(1);
    const duplicates = reportFigure(exit.stdout, "duplicates");
    expect(duplicates).toBeGreaterThan(0);
    expect(reportFigure(exit.stdout, "lost")).toBe(0);
    expect(reportFigure(exit.stdout, "replays")).toBe(0);
    expect(exit.stdout).toContain("Idempotency OFF (--no-idempotency)");
    expect(exit.stdout).toContain("This is what the idempotency interceptor prevents");
    // The same faults that were harmless with the interceptor charge twice without it.
    for (const label of ["dropped responses", "bank timeouts", "client deadlines"]) {
      expect(faultRow(exit.stdout, label).duplicated, label).toBeGreaterThan(0);
    }

    const rows = rowsPerRequest(dataDir.path);
    expect(rows.payments).toHaveLength(200);
    expect(rows.charges).toBeGreaterThan(200);
  }, 120_000);
});
