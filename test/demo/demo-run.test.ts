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

describe("npm start", () => {
  let dataDir: ReturnType<typeof createTempDataDir> | undefined;
  afterEach(() => dataDir?.remove());

  it("keeps every payment exactly once through drops, resets and a SIGKILL of the server", async () => {
    dataDir = createTempDataDir();
    const exit = await runDemoProcess(["-n", "300", "-c", "16", "--seed", "7", "--data-dir", dataDir.path]);
    expect(exit.status, `${exit.stdout}\n${exit.stderr}`).toBe(0);
    expect(reportFigure(exit.stdout, "payments asked for")).toBe(300);
    expect(reportFigure(exit.stdout, "duplicates")).toBe(0);
    expect(reportFigure(exit.stdout, "lost")).toBe(0);
    expect(reportFigure(exit.stdout, "payments recorded")).toBe(300);
    expect(reportFigure(exit.stdout, "charges at the bank")).toBe(300);
    // The network really was hostile, and the interceptor really answered retries.
    expect(reportFigure(exit.stdout, "retries")).toBeGreaterThan(0);
    expect(reportFigure(exit.stdout, "replays")).toBeGreaterThan(0);
    expect(exit.stdout).toContain("server killed with SIGKILL once and restarted");
    expect(exit.stdout).toContain("OK: every payment was recorded and charged exactly once");
    // Without a TTY: plain progress lines, and the kill announced.
    expect(exit.stderr).toMatch(/^payments 300\/300, retries \d+, replays \d+$/m);
    expect(exit.stderr).toContain("server killed with SIGKILL, restarting");
    expect(exit.stderr).not.toContain("\u001b[");

    const rows = rowsPerRequest(dataDir.path);
    expect(rows.payments).toHaveLength(300);
    expect(rows.payments.every((n) => n === 1)).toBe(true);
    expect(rows.charges).toBe(300);
  });

  it("shows the duplicates with --no-idempotency and exits non-zero", async () => {
    dataDir = createTempDataDir();
    const exit = await runDemoProcess([
      "-n", "200", "-c", "16", "--seed", "7", "--drop-rate", "0.2", "--no-crash", "--no-idempotency", "--data-dir", dataDir.path,
    ]);
    expect(exit.status, `${exit.stdout}\n${exit.stderr}`).toBe(1);
    const duplicates = reportFigure(exit.stdout, "duplicates");
    expect(duplicates).toBeGreaterThan(0);
    expect(reportFigure(exit.stdout, "lost")).toBe(0);
    expect(reportFigure(exit.stdout, "replays")).toBe(0);
    expect(exit.stdout).toContain("Idempotency OFF (--no-idempotency)");
    expect(exit.stdout).toContain("This is what the idempotency interceptor prevents");

    const rows = rowsPerRequest(dataDir.path);
    expect(rows.payments).toHaveLength(200);
    expect(rows.payments.filter((n) => n > 1)).toHaveLength(duplicates);
    expect(rows.charges).toBeGreaterThan(200);
  });
});
