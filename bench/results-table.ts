import { formatTable } from "../src/cli/format-table.js";
import type { BenchResults } from "./bench-results.js";

/** The results as a plain-text table, one line per scenario and concurrency, then the targets. */
export function formatResultsTable(results: BenchResults): string {
  const rows = results.results.map((r) => [
    r.scenario,
    String(r.concurrency),
    Math.round(r.callsPerSecond).toLocaleString("en-US"),
    r.p50Ms.toFixed(2),
    r.p99Ms.toFixed(2),
    `${r.ratioToBaseline.toFixed(2)}x`,
    micros(r.serverCpuMicrosPerCall),
    micros(r.clientCpuMicrosPerCall),
    micros(r.serviceCpuMicrosPerCall),
    String(r.errors),
  ]);
  const table = formatTable(
    ["scenario", "conc", "calls/s", "p50 ms", "p99 ms", "vs baseline", "server us/call", "client us/call", "Redis/PG us/call", "errors"],
    rows,
  );
  const targets = formatTable(
    ["target (calls/s at concurrency 64)", "measured", "result"],
    results.targets.map((t) => [t.name, t.measured === undefined ? "-" : `${t.measured.toFixed(2)}x`, t.status]),
  );
  return `${table}\n\n${targets}`;
}

function micros(value: number | undefined): string {
  return value === undefined ? "-" : Math.round(value).toLocaleString("en-US");
}
