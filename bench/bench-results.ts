import type { CpuPinning } from "./cpu-pinning.js";
import { type IntervalStats, type Spread, spreadOf } from "./latency-stats.js";

/** One measured round of one scenario at one concurrency. */
export interface RoundResult extends IntervalStats {
  /** The round, from 1. */
  readonly round: number;
  /** Which of the scenario's processes ran the round, from 0 (see `serversPerScenario`). */
  readonly process: number;
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
  readonly kind: "rpc" | "store" | "layer";
  readonly concurrency: number;
  /** Median calls per second over the rounds (claim + complete pairs for store scenarios). */
  readonly callsPerSecond: number;
  /** How calls per second spread over the rounds. */
  readonly callsPerSecondSpread: Spread;
  /** Median of the rounds' median latencies, in milliseconds. */
  readonly p50Ms: number;
  /** Median of the rounds' 99th percentile latencies, in milliseconds. */
  readonly p99Ms: number;
  /** Medians of the rounds' CPU times per call; see `RoundResult`. */
  readonly serverCpuMicrosPerCall?: number;
  readonly clientCpuMicrosPerCall?: number;
  readonly serviceCpuMicrosPerCall?: number;
  /**
   * Calls per second divided by the baseline's at the same concurrency, round
   * by round; the median of those ratios. Pairing the rounds cancels the
   * noise that hits a whole round (other load on the machine).
   */
  readonly ratioToBaseline: number;
  /** How the per-round ratios to the baseline spread. */
  readonly ratioToBaselineSpread: Spread;
  /** Failed calls over all rounds; any makes the bench exit non-zero. */
  readonly errors: number;
  readonly rounds: readonly RoundResult[];
}

/** One of the performance goals of the project, judged on this run. */
export interface TargetResult {
  /** Such as `sqlite-normal >= 0.95 x baseline`, or `store-postgres >= 10000 calls/s`. */
  readonly name: string;
  /** `ratio`: of two scenarios' calls per second; `absolute`: one scenario's calls per second. */
  readonly unit: "ratio" | "absolute";
  /**
   * The median of the per-round ratios of the two scenarios' calls per
   * second (for an absolute target, of the rounds' calls per second), or
   * undefined when a scenario it needs was not run.
   */
  readonly measured: number | undefined;
  /** How the per-round values spread. */
  readonly spread: Spread | undefined;
  /** The ratio (or calls per second) the target asks for. */
  readonly required: number;
  /** Judged on `measured`. */
  readonly status: "met" | "missed" | "not measured";
  /**
   * True when the required ratio lies within the interquartile range of the
   * per-round ratios: this run does not settle the target either way.
   */
  readonly withinNoise: boolean;
  /**
   * For a target with a floor scenario that ran: the same ratio with the
   * floor in place of ours (the bare writes any layer makes; see
   * bench/floor-services.ts), and for a growth target in place of both
   * sides, round by round. The most any implementation reaches here.
   */
  readonly floor?: { readonly scenario: string; readonly measured: number; readonly spread: Spread };
  /**
   * True when even the floor's third quartile lies below the required
   * ratio: no implementation that makes these writes meets the target on
   * this machine.
   */
  readonly outOfReach: boolean;
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
    /** Server processes per RPC scenario, taking turns round by round. */
    readonly serversPerScenario: number;
    /** The CPUs the server side and the load generator were pinned to; null when they were not (see notes). */
    readonly pinning: CpuPinning | null;
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
  /**
   * The denominator: the baseline, a peer, or another scenario of ours;
   * absent for a target in calls per second.
   */
  readonly against?: string;
  readonly required: number;
  /** The floor scenario that stands in for ours, where there is one. */
  readonly floor?: string;
  /** What the floor is divided by, when not `against`: a floor of `against` (for the growth targets). */
  readonly floorAgainst?: string;
}

const targetSpecs: readonly TargetSpec[] = [
  { scenario: "sqlite-normal", against: "baseline", required: 0.95, floor: "sqlite-floor" },
  { scenario: "sqlite-full", against: "baseline", required: 0.9 },
  { scenario: "replay", against: "baseline", required: 1.1 },
  { scenario: "sqlite-1m", against: "sqlite-10k", required: 0.9 },
  { scenario: "postgres", against: "baseline", required: 0.85 },
  // Claim + complete pairs of the PostgreSQL store alone, with group commit.
  { scenario: "store-postgres", required: 10_000 },
  // Peers are compared in the layer alone: through the RPC, connect-node's own
  // cost is the same for everyone and swings more than the layers differ.
  { scenario: "layer-sqlite-normal", against: "layer-powertools-redis", required: 2, floor: "layer-sqlite-floor" },
  {
    scenario: "layer-sqlite-normal",
    against: "layer-node-idempotency-redis",
    required: 1.25,
    floor: "layer-sqlite-floor",
  },
  {
    scenario: "layer-sqlite-1m",
    against: "layer-sqlite-10k",
    required: 0.9,
    floor: "layer-sqlite-floor-1m",
    floorAgainst: "layer-sqlite-floor-10k",
  },
  { scenario: "layer-postgres-1m", against: "layer-postgres-10k", required: 0.9 },
  // A handler that writes: what deduplicating it costs over the same write
  // without idempotency, with the row and the completion in one commit.
  { scenario: "sqlite-commit", against: "baseline-db", required: 0.95, floor: "sqlite-commit-floor" },
  { scenario: "sqlite-commit-full", against: "baseline-db-full", required: 0.95 },
  { scenario: "postgres-commit", against: "baseline-postgres", required: 0.95, floor: "postgres-commit-floor" },
];

/**
 * The ratios of two scenarios' calls per second, round by round (rounds
 * that both ran). Within a round the scenarios run close together, so
 * noise that lasts a round hits both.
 */
export function roundRatios(ours: Pick<ScenarioResult, "rounds">, theirs: Pick<ScenarioResult, "rounds">): number[] {
  return ours.rounds.flatMap((round) => {
    const other = theirs.rounds.find((r) => r.round === round.round);
    return other === undefined || other.callsPerSecond === 0 ? [] : [round.callsPerSecond / other.callsPerSecond];
  });
}

/** A scenario's result at `targetConcurrency`, if it ran. */
function atTargetConcurrency(results: readonly ScenarioResult[], scenario: string): ScenarioResult | undefined {
  return results.find((r) => r.scenario === scenario && r.concurrency === targetConcurrency);
}

/** Judges the targets on calls per second at `targetConcurrency`. */
export function evaluateTargets(results: readonly ScenarioResult[]): TargetResult[] {
  const at = (scenario: string) => atTargetConcurrency(results, scenario);
  const valuesOf = (scenario: string, against: string | undefined): number[] => {
    const ours = at(scenario);
    if (ours === undefined) {
      return [];
    }
    if (against === undefined) {
      return ours.rounds.map((round) => round.callsPerSecond);
    }
    const theirs = at(against);
    return theirs === undefined ? [] : roundRatios(ours, theirs);
  };
  return targetSpecs.map(({ scenario, against, required, floor, floorAgainst }) => {
    const values = valuesOf(scenario, against);
    const spread = values.length === 0 ? undefined : spreadOf(values);
    const measured = spread?.median;
    const floorValues = floor === undefined ? [] : valuesOf(floor, floorAgainst ?? against);
    const floorSpread = floorValues.length === 0 ? undefined : spreadOf(floorValues);
    return {
      name: against === undefined ? `${scenario} >= ${required} calls/s` : `${scenario} >= ${required} x ${against}`,
      unit: against === undefined ? "absolute" : "ratio",
      measured,
      spread,
      required,
      status: measured === undefined ? "not measured" : measured >= required ? "met" : "missed",
      withinNoise: spread !== undefined && spread.q1 <= required && required <= spread.q3,
      ...(floor === undefined || floorSpread === undefined
        ? {}
        : { floor: { scenario: floor, measured: floorSpread.median, spread: floorSpread } }),
      outOfReach: floorSpread !== undefined && floorSpread.q3 < required,
    };
  });
}

/**
 * Notes that put the results in context: how far the identical twin of the
 * baseline lands from it (the resolution of this run's RPC ratios), and what
 * group commit buys (each SQLite store-alone scenario against its twin with
 * one transaction per operation), what a handler that writes costs with the
 * interceptor and what the replay cache saves, both in the layer alone. Only
 * for scenarios that ran.
 */
export function comparisonNotes(results: readonly ScenarioResult[]): string[] {
  const at = (scenario: string) => atTargetConcurrency(results, scenario);
  const notes: string[] = [];
  const baseline = at("baseline");
  const twin = at("baseline-twin");
  if (baseline !== undefined && twin !== undefined) {
    const ratios = spreadOf(roundRatios(twin, baseline));
    notes.push(
      `baseline-twin, the same server as baseline: ${ratios.median.toFixed(2)}x of it ` +
        `(rounds ${ratios.q1.toFixed(2)}x-${ratios.q3.toFixed(2)}x, all ${ratios.min.toFixed(2)}x-${ratios.max.toFixed(2)}x); ` +
        "RPC ratios closer than that are not told apart by this run",
    );
  }
  for (const durability of ["normal", "full"] as const) {
    const on = at(`store-sqlite-${durability}`);
    const off = at(`store-sqlite-${durability}-single`);
    if (on === undefined || off === undefined) {
      continue;
    }
    const ratios = spreadOf(roundRatios(on, off));
    notes.push(
      `group commit, durability ${durability}: ${Math.round(on.callsPerSecond).toLocaleString("en-US")} claim+complete pairs/s ` +
        `against ${Math.round(off.callsPerSecond).toLocaleString("en-US")} with one transaction per operation: ` +
        `${ratios.median.toFixed(1)}x (rounds ${ratios.q1.toFixed(1)}x-${ratios.q3.toFixed(1)}x)`,
    );
  }
  const commit = at("layer-sqlite-commit");
  const plainRow = at("layer-baseline-db");
  if (commit !== undefined && plainRow !== undefined) {
    const ratios = spreadOf(roundRatios(commit, plainRow));
    notes.push(
      `a handler that writes, layer alone: layer-sqlite-commit ${ratios.median.toFixed(2)}x layer-baseline-db ` +
        `(rounds ${ratios.q1.toFixed(2)}x-${ratios.q3.toFixed(2)}x)`,
    );
  }
  const cached = at("layer-replay");
  const uncached = at("layer-replay-store");
  if (cached !== undefined && uncached !== undefined) {
    const ratios = spreadOf(roundRatios(cached, uncached));
    notes.push(
      `replay cache, layer alone: ${Math.round(cached.callsPerSecond).toLocaleString("en-US")} replays/s from memory ` +
        `against ${Math.round(uncached.callsPerSecond).toLocaleString("en-US")} from the store: ` +
        `${ratios.median.toFixed(2)}x (rounds ${ratios.q1.toFixed(2)}x-${ratios.q3.toFixed(2)}x)`,
    );
  }
  return notes;
}
