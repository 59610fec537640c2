// `npm run bench`: the cost of idempotency against a plain server and against
// the libraries users would pick instead. See docs/benchmark.md and bench/README.md.
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Command, InvalidArgumentError, Option } from "commander";
import { planCpuPinning } from "./cpu-pinning.js";
import { summarizeBusiestCpuProfile } from "./cpu-profile-summary.js";
import type { BenchProtocol } from "./load-main.js";
import { benchPostgresUrl } from "./postgres-schemas.js";
import { benchRedisUrl } from "./redis-keys.js";
import { renderResultsChart } from "./results-chart.js";
import { formatResultsTable } from "./results-table.js";
import { runBench } from "./run-bench.js";
import { type Scenario, scenarios, selectScenarios } from "./scenarios.js";

const repoRoot = resolve(import.meta.dirname, "..");

const program = new Command("bench")
  .description("Measures connect-idempotency against a plain Connect server and against peer libraries.")
  .option("--duration <seconds>", "measured seconds per scenario and round (default 1, quick 0.3)", positiveNumber)
  .option("--rounds <n>", "rounds; each scenario's result is the median round (default 9, quick 1)", positiveInteger)
  .option("--warmup <seconds>", "unmeasured seconds before each round (default 0.2, quick 0.1)", positiveNumber)
  .option("--quick", "runs everything briefly, as a smoke test; the numbers are noisy", false)
  .option("--scenarios <names>", "comma-separated scenarios (baseline is always added)", list)
  .option("--concurrency <levels>", "comma-separated concurrency levels", integerList, [1, 64])
  .option(
    "--servers <n>",
    "server processes per RPC scenario, taking turns by round (default 3, quick 1)",
    positiveInteger,
  )
  .addOption(
    new Option("--protocol <protocol>", "wire protocol (binary codec)").choices(["grpc", "connect"]).default("grpc"),
  )
  .option(
    "--out <dir>",
    "where latest.json and latest.svg go (default bench/results; .data/bench/profiled with --cpu-prof)",
  )
  .option("--cache-dir <dir>", "where prefilled SQLite files are kept between runs", join(repoRoot, ".data/bench"))
  .option("--no-pin", "does not pin the server side and the load generator to CPUs of their own (taskset)")
  .option("--cpu-prof", "profiles the server and layer processes and prints where their CPU time went", false)
  .option("--list", "lists the scenarios and exits", false);

interface CliOptions {
  readonly duration?: number;
  readonly rounds?: number;
  readonly warmup?: number;
  readonly quick: boolean;
  readonly scenarios?: string[];
  readonly concurrency: number[];
  readonly servers?: number;
  readonly protocol: BenchProtocol;
  readonly out?: string;
  readonly cacheDir: string;
  readonly pin: boolean;
  readonly cpuProf: boolean;
  readonly list: boolean;
}

async function main(): Promise<number> {
  const options = program.parse().opts<CliOptions>();
  if (options.list) {
    for (const s of scenarios) {
      console.log(`${s.name.padEnd(30)} ${s.description}`);
    }
    return 0;
  }
  let selected: Scenario[] = [];
  try {
    selected = selectScenarios(options.scenarios);
  } catch (error) {
    program.error(error instanceof Error ? error.message : String(error));
  }
  // Profiling slows everything down, so its numbers stay out of bench/results unless asked.
  const out = resolve(options.out ?? join(repoRoot, options.cpuProf ? ".data/bench/profiled" : "bench/results"));
  const cpuProfileDir = options.cpuProf ? join(out, "profiles") : undefined;
  if (cpuProfileDir !== undefined) {
    // The summary reads every profile in a scenario's folder: none may be left from an earlier run.
    await rm(cpuProfileDir, { recursive: true, force: true });
  }
  await mkdir(cpuProfileDir ?? out, { recursive: true });
  const results = await runBench({
    scenarios: selected,
    concurrency: options.concurrency,
    rounds: options.rounds ?? (options.quick ? 1 : 9),
    roundMs: 1000 * (options.duration ?? (options.quick ? 0.3 : 1)),
    warmupMs: 1000 * (options.warmup ?? (options.quick ? 0.1 : 0.2)),
    initialWarmupMs: options.quick ? 300 : 5000,
    serversPerScenario: options.servers ?? (options.quick ? 1 : 3),
    protocol: options.protocol,
    quick: options.quick,
    cacheDir: resolve(options.cacheDir),
    postgresUrl: benchPostgresUrl,
    pinning: options.pin ? planCpuPinning() : { pinned: false, reason: "--no-pin" },
    ...(cpuProfileDir === undefined ? {} : { cpuProfileDir }),
    log: (line) => console.error(`[bench] ${line}`),
  });
  await writeFile(join(out, "latest.json"), `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(join(out, "latest.svg"), renderResultsChart(results));
  console.log(formatResultsTable(results));
  for (const note of results.notes) {
    console.log(`note: ${note}`);
  }
  console.log(
    `\n${results.machine.cpus} x ${results.machine.cpuModel}, Node ${results.machine.node}; ` +
      `load average ${results.machine.loadAverageBefore.toFixed(2)} before, ${results.machine.loadAverageAfter.toFixed(2)} after; ` +
      `${results.durationSeconds} s. Wrote ${join(out, "latest.json")} and latest.svg.`,
  );
  if (cpuProfileDir !== undefined) {
    const profiled = results.results.filter(
      (r) => r.kind !== "store" && r.concurrency === Math.max(...options.concurrency),
    );
    for (const scenario of profiled) {
      const summary = await summarizeBusiestCpuProfile(join(cpuProfileDir, scenario.scenario), 15);
      const where = scenario.kind === "layer" ? "layer" : "server";
      console.log(`\n${scenario.scenario}: ${Math.round(summary.busyMs)} ms busy in the ${where} process`);
      for (const area of summary.areas) {
        console.log(`  ${area.selfPercent.toFixed(1).padStart(5)}%  ${area.name}`);
      }
      console.log("  top functions by self time:");
      for (const fn of summary.functions) {
        console.log(`  ${fn.selfPercent.toFixed(1).padStart(5)}%  ${fn.name}`);
      }
      console.log("  by file of this repo, with what it calls:");
      for (const file of summary.ownFiles) {
        console.log(`  ${file.selfPercent.toFixed(1).padStart(5)}%  ${file.name}`);
      }
    }
  }
  const errors = results.results.reduce((sum, r) => sum + r.errors, 0);
  if (errors > 0) {
    console.error(`[bench] ${errors} calls failed; the numbers above are not trustworthy`);
    return 1;
  }
  // Missed targets are findings, not failures: the table reports them.
  return 0;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) {
    throw new InvalidArgumentError("expected a positive number");
  }
  return n;
}

function positiveInteger(value: string): number {
  const n = positiveNumber(value);
  if (!Number.isInteger(n)) {
    throw new InvalidArgumentError("expected a positive integer");
  }
  return n;
}

function list(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function integerList(value: string): number[] {
  return list(value).map(positiveInteger);
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    if (String(error).includes("ECONNREFUSED")) {
      console.error(
        `[bench] a service is down: PostgreSQL (${benchPostgresUrl}) and Redis (${benchRedisUrl}) must run for the scenarios that use them; --scenarios picks others`,
      );
    }
    process.exit(1);
  },
);
