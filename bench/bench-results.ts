import type { IntervalStats } from "./latency-stats.js";

/** One measured round of one scenario at one concurrency. */
export interface RoundResult extends IntervalStats {
  /** The round, from 1. */
  readonly round: number;
  /**
   * CPU time per completed call of the process that runs the interceptor or
   * the peer library: the server, or the store process of store scenarios.
   */
  readonly serverCpuMicrosPerCall?: number;
  /** CPU time the load generator spent per completed call (RPC scenarios only). */
  readonly clientCpuMicrosPerCall?: number;
  /** CPU time Redis or the PostgreSQL backends spent per completed call, for scenarios that use them. */
  readonly serviceCpuMicrosPerCall?: number;
}

/** A scenario at one concurrency: the median over its rounds. */
export interface ScenarioResult {
  readonly scenario: string;
  readonly description: string;
  readonly kind: "rpc" | "store";
  readonly concurrency: number;
  /** Median calls per second over the rounds (claim + complete pairs for store scenarios). */
  readonly callsPerSecond: number;
  /** Median of the rounds' median latencies, in milliseconds. */
  readonly p50Ms: number;
  /** Median of the rounds' 99th percentile latencies, in milliseconds. */
  readonly p99Ms: number;
  /** Medians of the rounds' CPU times per call; see `RoundResult`. */
  readonly serverCpuMicrosPerCall?: number;
  readonly clientCpuMicrosPerCall?: number;
  readonly serviceCpuMicrosPerCall?: number;
  /** Calls per second divided by the baseline's at the same concurrency, in the same run. */
  readonly ratioToBaseline: number;
  /** Failed calls over all rounds; any makes the bench exit non-zero. */
  readonly errors: number;
  readonly rounds: readonly RoundResult[];
}

/** One of the performance goals of the project, judged on this run. */
export interface TargetResult {
  /** Such as `sqlite-normal >= 0.95 x baseline`. */
  readonly name: string;
  /** The measured ratio, or undefined when a scenario it needs was not run. */
  readonly measured: number | undefined;
  /** The ratio the target asks for. */
  readonly required: number;
  readonly status: "met" | "missed" | "not measured";
}

/** Everything one `npm run bench` measured, as written to bench/results/latest.json. */
export interface BenchResults {
  readonly startedAt: string;
  readonly durationSeconds: number;
  readonly machine: {
    readonly cpuModel: string;
    readonly cpus: number;
    readonly node: string;
    readonly platform: string;
    /** 1-minute load average before and after: other work on the machine shows here. */
    readonly loadAverageBefore: number;
    readonly loadAverageAfter: number;
  };
  readonly settings: {
    readonly protocol: string;
    readonly concurrency: readonly number[];
    readonly rounds: number;
    readonly roundMs: number;
    readonly warmupMs: number;
    readonly quick: boolean;
  };
  readonly results: readonly ScenarioResult[];
  readonly targets: readonly TargetResult[];
  /** Anything the reader needs to know to trust the numbers, such as where prefilled files came from. */
  readonly notes: readonly string[];
}

/** The concurrency the targets are judged at. */
export const targetConcurrency = 64;

interface TargetSpec {
  readonly scenario: string;
  /** The denominator: the baseline, a peer, or another scenario of ours. */
  readonly against: string;
  readonly required: number;
}

const targetSpecs: readonly TargetSpec[] = [
  { scenario: "sqlite-normal", against: "baseline", required: 0.95 },
  { scenario: "sqlite-full", against: "baseline", required: 0.9 },
  { scenario: "replay", against: "baseline", required: 1.0 },
  { scenario: "sqlite-normal", against: "powertools-redis", required: 2 },
  { scenario: "sqlite-normal", against: "node-idempotency-redis", required: 2 },
  { scenario: "sqlite-1m", against: "sqlite-10k", required: 0.9 },
];

/** Judges the targets on calls per second at `targetConcurrency`. */
export function evaluateTargets(results: readonly ScenarioResult[]): TargetResult[] {
  const rate = (scenario: string) =>
    results.find((r) => r.scenario === scenario && r.concurrency === targetConcurrency)?.callsPerSecond;
  return targetSpecs.map(({ scenario, against, required }) => {
    const ours = rate(scenario);
    const theirs = rate(against);
    const measured = ours === undefined || theirs === undefined || theirs === 0 ? undefined : ours / theirs;
    return {
      name: `${scenario} >= ${required} x ${against}`,
      measured,
      required,
      status: measured === undefined ? "not measured" : measured >= required ? "met" : "missed",
    };
  });
}
