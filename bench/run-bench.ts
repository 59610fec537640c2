import { mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import {
  type BenchResults,
  evaluateTargets,
  comparisonNotes,
  type RoundResult,
  roundRatios,
  type ScenarioResult,
} from "./bench-results.js";
import type { CpuPinningPlan } from "./cpu-pinning.js";
import { median, spreadOf } from "./latency-stats.js";
import type { BenchProtocol } from "./load-main.js";
import { type ScenarioRunner, startScenarios } from "./scenario-runners.js";
import type { Scenario } from "./scenarios.js";

/** How one `npm run bench` runs. */
export interface BenchSettings {
  readonly scenarios: readonly Scenario[];
  /** Concurrency levels of the RPC scenarios; store and layer scenarios run at the highest only. */
  readonly concurrency: readonly number[];
  readonly rounds: number;
  /** Length of one measured round. */
  readonly roundMs: number;
  /** Unmeasured calls right before each round, so that every round starts warm. */
  readonly warmupMs: number;
  /** Unmeasured calls once per scenario process before the first round, for the JIT and the caches. */
  readonly initialWarmupMs: number;
  /** Server processes per RPC scenario; round r measures process r mod this. */
  readonly serversPerScenario: number;
  readonly protocol: BenchProtocol;
  readonly quick: boolean;
  /** Where prefilled SQLite files are cached between runs. */
  readonly cacheDir: string;
  readonly postgresUrl: string;
  /** When set, server and layer processes write CPU profiles here, a folder per scenario. */
  readonly cpuProfileDir?: string;
  /** Whether, and to which CPUs, the processes are pinned. */
  readonly pinning: CpuPinningPlan;
  /** Progress lines, for stderr. */
  readonly log: (line: string) => void;
}

/**
 * Runs every scenario. Rounds interleave the scenarios, in an order that
 * rotates from round to round, so that noise from the rest of the machine
 * hits all of them alike; a scenario's result is the median of its rounds.
 */
export async function runBench(settings: BenchSettings): Promise<BenchResults> {
  const started = Date.now();
  const loadAverageBefore = loadavg()[0] ?? 0;
  const { log } = settings;
  const notes: string[] = [];
  const { pinning } = settings;
  const pinningNote = pinning.pinned
    ? `server, store-alone and layer-alone processes pinned to CPU ${pinning.pinning.serverCpu}, the load generator to ` +
      `CPU ${pinning.pinning.loadCpu} (taskset); Redis, PostgreSQL and other work on the machine are not pinned`
    : `processes not pinned (${pinning.reason}): the server and the load generator compete for the same CPUs`;
  log(pinningNote);
  notes.push(pinningNote);
  const tmp = await mkdtemp(join(tmpdir(), "connect-idempotency-bench-"));
  try {
    const { runners, stop } = await startScenarios(settings.scenarios, {
      tmp,
      cacheDir: settings.cacheDir,
      postgresUrl: settings.postgresUrl,
      protocol: settings.protocol,
      ...(settings.cpuProfileDir === undefined ? {} : { cpuProfileDir: settings.cpuProfileDir }),
      ...(pinning.pinned ? { pinning: pinning.pinning } : {}),
      serversPerScenario: settings.serversPerScenario,
      log,
      note: (line) => notes.push(line),
    });
    let results: ScenarioResult[];
    try {
      results = await measureRounds(settings, (scenario) => {
        const instances = runners.get(scenario.name);
        if (instances === undefined || instances.length === 0) {
          throw new Error(`scenario ${scenario.name} was not started`);
        }
        return instances;
      });
    } finally {
      await stop();
    }
    if (settings.serversPerScenario > 1) {
      notes.push(
        `each RPC scenario ran on ${settings.serversPerScenario} server processes of its own, taking turns round by round, ` +
          "so that no single process's luck decides its figures",
      );
    }
    const cpu = cpus();
    return {
      startedAt: new Date(started).toISOString(),
      durationSeconds: Math.round((Date.now() - started) / 100) / 10,
      machine: {
        cpuModel: cpu[0]?.model.trim() ?? "unknown",
        cpus: cpu.length,
        node: process.version,
        platform: `${process.platform} ${process.arch}`,
        loadAverageBefore,
        loadAverageAfter: loadavg()[0] ?? 0,
      },
      settings: {
        protocol: settings.protocol,
        concurrency: settings.concurrency,
        rounds: settings.rounds,
        roundMs: settings.roundMs,
        warmupMs: settings.warmupMs,
        quick: settings.quick,
        serversPerScenario: settings.serversPerScenario,
        pinning: pinning.pinned ? pinning.pinning : null,
      },
      results,
      targets: evaluateTargets(results),
      notes: [...notes, ...comparisonNotes(results)],
    };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function measureRounds(
  settings: BenchSettings,
  runnersOf: (scenario: Scenario) => readonly ScenarioRunner[],
): Promise<ScenarioResult[]> {
  const maxConcurrency = Math.max(...settings.concurrency);
  const levels = settings.concurrency.map((concurrency) => ({
    concurrency,
    scenarios: settings.scenarios.filter((s) => s.kind === "rpc" || concurrency === maxConcurrency),
  }));
  settings.log(`warming up ${settings.scenarios.length} scenarios`);
  for (const scenario of settings.scenarios) {
    for (const warmUp of runnersOf(scenario)) {
      await warmUp(maxConcurrency, settings.initialWarmupMs);
    }
  }
  const rounds = new Map<string, RoundResult[]>();
  for (let round = 1; round <= settings.rounds; round++) {
    for (const { concurrency, scenarios } of levels) {
      for (const scenario of rotate(scenarios, round - 1)) {
        const instances = runnersOf(scenario);
        const instance = (round - 1) % instances.length;
        const run = instances[instance]!;
        await run(concurrency, settings.warmupMs);
        const result: RoundResult = { round, process: instance, ...(await run(concurrency, settings.roundMs)) };
        const id = `${scenario.name}@${concurrency}`;
        rounds.set(id, [...(rounds.get(id) ?? []), result]);
        settings.log(
          `round ${round}/${settings.rounds}  c=${concurrency}  ${scenario.name}: ${Math.round(result.callsPerSecond)} calls/s` +
            (result.errors > 0 ? `, ${result.errors} errors (${result.firstError})` : ""),
        );
      }
    }
  }
  const summaries = levels.flatMap(({ concurrency, scenarios }) =>
    scenarios.map((scenario) => summarize(scenario, concurrency, rounds.get(`${scenario.name}@${concurrency}`) ?? [])),
  );
  return summaries.map((summary) => {
    const baseline = summaries.find((s) => s.scenario === "baseline" && s.concurrency === summary.concurrency);
    const ratios = spreadOf(baseline === undefined ? [] : roundRatios(summary, baseline));
    return { ...summary, ratioToBaseline: ratios.median, ratioToBaselineSpread: ratios };
  });
}

function summarize(
  scenario: Scenario,
  concurrency: number,
  rounds: readonly RoundResult[],
): Omit<ScenarioResult, "ratioToBaseline" | "ratioToBaselineSpread"> {
  const medianOf = (pick: (r: RoundResult) => number | undefined) => {
    const values = rounds.flatMap((r) => {
      const value = pick(r);
      return value === undefined ? [] : [value];
    });
    return values.length === 0 ? undefined : median(values);
  };
  // Undefined for what a scenario does not measure; JSON leaves those out.
  const cpu = {
    serverCpuMicrosPerCall: medianOf((r) => r.serverCpuMicrosPerCall),
    clientCpuMicrosPerCall: medianOf((r) => r.clientCpuMicrosPerCall),
    serviceCpuMicrosPerCall: medianOf((r) => r.serviceCpuMicrosPerCall),
  };
  return {
    scenario: scenario.name,
    description: scenario.description,
    kind: scenario.kind,
    concurrency,
    callsPerSecond: median(rounds.map((r) => r.callsPerSecond)),
    callsPerSecondSpread: spreadOf(rounds.map((r) => r.callsPerSecond)),
    p50Ms: median(rounds.map((r) => r.p50Ms)),
    p99Ms: median(rounds.map((r) => r.p99Ms)),
    ...cpu,
    errors: rounds.reduce((sum, r) => sum + r.errors, 0),
    rounds,
  };
}

/** The items starting at `by`, wrapping around: each round runs the scenarios in another order. */
function rotate<T>(items: readonly T[], by: number): T[] {
  const shift = items.length === 0 ? 0 : by % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}
