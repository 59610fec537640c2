import { formatTable } from "../src/cli/format-table.js";
import type { BenchResults, TargetResult } from "./bench-results.js";
import type { Spread } from "./latency-stats.js";

/**
 * The results as a plain-text table, one line per scenario and concurrency,
 * then the targets. Next to each median stands the interquartile range of
 * the rounds, so that a reader sees how settled it is.
 */
export function formatResultsTable(results: BenchResults): string {
  const rows = results.results.map((r) => [
    r.scenario,
    String(r.concurrency),
    Math.round(r.callsPerSecond).toLocaleString("en-US"),
    range(r.callsPerSecondSpread, (v) => Math.round(v).toLocaleString("en-US")),
    r.p50Ms.toFixed(2),
    r.p99Ms.toFixed(2),
    `${r.ratioToBaseline.toFixed(2)}x`,
    range(r.ratioToBaselineSpread, (v) => v.toFixed(2)),
    micros(r.serverCpuMicrosPerCall),
    micros(r.clientCpuMicrosPerCall),
    micros(r.serviceCpuMicrosPerCall),
    String(r.errors),
  ]);
  const table = formatTable(
    [
      "scenario",
      "conc",
      "calls/s",
      "calls/s IQR",
      "p50 ms",
      "p99 ms",
      "vs baseline",
      "ratio IQR",
      "server us/call",
      "client us/call",
      "Redis/PG us/call",
      "errors",
    ],
    rows,
  );
  const targets = formatTable(
    ["target (calls/s at concurrency 64)", "measured", "rounds IQR", "floor", "floor IQR", "result"],
    results.targets.map((t) => {
      const value = (v: number) => (t.unit === "absolute" ? v.toFixed(0) : `${v.toFixed(2)}x`);
      return [
        t.name,
        t.measured === undefined ? "-" : value(t.measured),
        t.spread === undefined ? "-" : range(t.spread, value),
        t.floor === undefined ? "-" : value(t.floor.measured),
        t.floor === undefined ? "-" : range(t.floor.spread, value),
        targetResult(t),
      ];
    }),
  );
  return `${table}\n\n${targets}`;
}

/**
 * `met`, `missed`, or either with `, within noise` when the rounds' IQR
 * straddles the required ratio, or `, out of reach` when even the floor's
 * IQR lies below it.
 */
function targetResult(target: TargetResult): string {
  if (target.outOfReach) {
    return `${target.status}, out of reach`;
  }
  return target.withinNoise ? `${target.status}, within noise` : target.status;
}

function range(spread: Spread, format: (value: number) => string): string {
  return Number.isNaN(spread.q1) ? "-" : `${format(spread.q1)}-${format(spread.q3)}`;
}

function micros(value: number | undefined): string {
  return value === undefined ? "-" : Math.round(value).toLocaleString("en-US");
}
