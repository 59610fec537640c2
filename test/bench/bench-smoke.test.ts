import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BenchResults } from "../../bench/bench-results.js";

const repoRoot = resolve(import.meta.dirname, "../..");

/** Runs `npm run bench --quick` as a user does, with 0.2 s rounds, writing to `out`. */
async function runQuickBench(out: string, args: readonly string[]): Promise<{ stdout: string; results: BenchResults }> {
  const run = await promisify(execFile)(
    process.execPath,
    ["--import", "tsx", "bench/main.ts", "--quick", "--duration", "0.2", ...args, "--out", out],
    { cwd: repoRoot, timeout: 100_000 },
  ).catch((error: { code?: number; stderr?: string }) => {
    // A missed target must not fail the bench; only errors do.
    throw new Error(`the bench exited with ${error.code}: ${error.stderr}`);
  });
  const results = JSON.parse(await readFile(join(out, "latest.json"), "utf8")) as BenchResults;
  return { stdout: run.stdout, results };
}

// Runs `npm run bench` the way a user does, briefly, and checks that what it
// writes is sane. Speed is not judged here: the bench reports it.
describe("npm run bench --quick", () => {
  let out: string;
  let stdout: string;
  let results: BenchResults;

  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), "bench-smoke-"));
    ({ stdout, results } = await runQuickBench(out, [
      "--scenarios",
      "baseline-twin,sqlite-normal,sqlite-floor,baseline-db,sqlite-commit,store-sqlite-normal,store-sqlite-normal-single,layer-sqlite-normal,layer-replay",
    ]));
  }, 120_000);

  afterAll(async () => {
    await rm(out, { recursive: true, force: true });
  });

  it("prints the table, with every target judged or marked not measured", () => {
    expect(stdout).toMatch(/^scenario\s+conc\s+calls\/s\s+calls\/s IQR/m);
    const judged = expect.stringMatching(/^(met|missed)$/);
    expect(results.targets.map((t) => [t.name, t.status])).toEqual([
      ["sqlite-normal >= 0.95 x baseline", judged],
      ["sqlite-full >= 0.9 x baseline", "not measured"],
      ["replay >= 1.1 x baseline", "not measured"],
      ["sqlite-1m >= 0.9 x sqlite-10k", "not measured"],
      ["postgres >= 0.85 x baseline", "not measured"],
      ["store-postgres >= 10000 calls/s", "not measured"],
      ["layer-sqlite-normal >= 2 x layer-powertools-redis", "not measured"],
      ["layer-sqlite-normal >= 1.25 x layer-node-idempotency-redis", "not measured"],
      ["layer-sqlite-1m >= 0.9 x layer-sqlite-10k", "not measured"],
      ["layer-postgres-1m >= 0.9 x layer-postgres-10k", "not measured"],
      ["sqlite-commit >= 0.95 x baseline-db", judged],
      ["sqlite-commit-full >= 0.95 x baseline-db-full", "not measured"],
      ["postgres-commit >= 0.95 x baseline-postgres", "not measured"],
    ]);
    const first = results.targets[0];
    // One round: the spread is that round's ratio.
    expect(first?.spread?.q1).toBe(first?.measured);
    expect(first?.spread?.q3).toBe(first?.measured);
    // Measured, its IQR, then the floor's (sqlite-floor ran) and its IQR.
    expect(stdout).toMatch(
      /^sqlite-normal >= 0\.95 x baseline\s+\d+\.\d\dx\s+\d+\.\d\dx-\d+\.\d\dx\s+\d+\.\d\dx\s+\d+\.\d\dx-\d+\.\d\dx\s+(met|missed)/m,
    );
    // The floor is sqlite-floor's ratio to the same baseline, round by round; a target without a floor scenario that ran has none.
    const floor = results.results.find((r) => r.scenario === "sqlite-floor" && r.concurrency === 64);
    const baseline64 = results.results.find((r) => r.scenario === "baseline" && r.concurrency === 64);
    expect(first?.floor?.scenario).toBe("sqlite-floor");
    expect(first?.floor?.measured).toBeCloseTo(floor!.callsPerSecond / baseline64!.callsPerSecond, 10);
    expect(first?.outOfReach).toBe(first!.floor!.spread.q3 < 0.95);
    expect(stdout).toMatch(/^layer-sqlite-normal >= 2 x layer-powertools-redis\s+-\s+-\s+-\s+-\s+not measured/m);
    // A target against another scenario than the baseline divides by that one, round by round.
    const commit = results.results.find((r) => r.scenario === "sqlite-commit" && r.concurrency === 64);
    const db = results.results.find((r) => r.scenario === "baseline-db" && r.concurrency === 64);
    expect(results.targets.find((t) => t.name === "sqlite-commit >= 0.95 x baseline-db")?.measured).toBeCloseTo(
      commit!.callsPerSecond / db!.callsPerSecond,
      10,
    );
  });

  it("pins the server side and the load generator to CPUs of their own when taskset is there, and says so", () => {
    const { pinning } = results.settings;
    if (pinning === null) {
      expect(results.notes.join("\n")).toMatch(/not pinned/);
    } else {
      expect(pinning.serverCpu).not.toBe(pinning.loadCpu);
      expect(results.notes.join("\n")).toMatch(new RegExp(`pinned to CPU ${pinning.serverCpu}`));
    }
  });

  it("measures baseline, the SQLite scenarios, the store alone and the layer alone with sane numbers", () => {
    const rows = results.results.map((r) => `${r.scenario}@${r.concurrency}`);
    expect(rows).toEqual([
      "baseline@1",
      "baseline-twin@1",
      "sqlite-normal@1",
      "sqlite-floor@1",
      "baseline-db@1",
      "sqlite-commit@1",
      "baseline@64",
      "baseline-twin@64",
      "sqlite-normal@64",
      "sqlite-floor@64",
      "baseline-db@64",
      "sqlite-commit@64",
      "store-sqlite-normal@64",
      "store-sqlite-normal-single@64",
      "layer-sqlite-normal@64",
      "layer-replay@64",
    ]);
    for (const r of results.results) {
      expect(r.errors, r.scenario).toBe(0);
      expect(r.rounds.length, r.scenario).toBe(1);
      expect(r.rounds[0]?.calls, r.scenario).toBeGreaterThan(0);
      expect(r.callsPerSecond, r.scenario).toBeGreaterThan(0);
      expect(r.p50Ms, r.scenario).toBeGreaterThan(0);
      expect(r.p50Ms, r.scenario).toBeLessThanOrEqual(r.p99Ms);
      expect(r.ratioToBaseline, r.scenario).toBeGreaterThan(0);
      expect(r.callsPerSecondSpread.median, r.scenario).toBe(r.callsPerSecond);
      expect(r.ratioToBaselineSpread.median, r.scenario).toBe(r.ratioToBaseline);
      expect(r.serverCpuMicrosPerCall, r.scenario).toBeGreaterThan(0);
    }
    const baseline = results.results.find((r) => r.scenario === "baseline" && r.concurrency === 64);
    expect(baseline?.ratioToBaseline).toBe(1);
    expect(baseline?.serverCpuMicrosPerCall).toBeGreaterThan(0);
  });

  it("notes how far the baseline's identical twin lands from it", () => {
    const twin = results.results.find((r) => r.scenario === "baseline-twin" && r.concurrency === 64);
    expect(results.notes).toContainEqual(
      expect.stringMatching(
        new RegExp(
          `^baseline-twin, the same server as baseline: ${twin!.ratioToBaseline.toFixed(2).replace(".", "\\.")}x of it`,
        ),
      ),
    );
  });

  it("notes what group commit buys: the store alone with it against one transaction per operation", () => {
    const on = results.results.find((r) => r.scenario === "store-sqlite-normal");
    const off = results.results.find((r) => r.scenario === "store-sqlite-normal-single");
    const ratio = (on!.callsPerSecond / off!.callsPerSecond).toFixed(1);
    expect(results.notes).toContainEqual(
      expect.stringMatching(
        new RegExp(`^group commit, durability normal: .* one transaction per operation: ${ratio.replace(".", "\\.")}x`),
      ),
    );
    expect(results.notes.join("\n")).not.toMatch(/durability full/);
  });

  it("draws the chart with a bar per RPC scenario at concurrency 64", async () => {
    const svg = await readFile(join(out, "latest.svg"), "utf8");
    expect(svg.startsWith("<svg")).toBe(true);
    // The background, and baseline, baseline-twin, sqlite-normal, sqlite-floor, baseline-db and sqlite-commit.
    expect(svg.match(/<rect /g)?.length).toBe(7);
    expect(svg).toContain(">sqlite-normal</text>");
    expect(svg).not.toContain(">store-sqlite-normal</text>");
  });
});

describe("npm run bench with several server processes per scenario", () => {
  it("measures the rounds on the scenario's processes in turn, and says so", async () => {
    const out = await mkdtemp(join(tmpdir(), "bench-servers-"));
    try {
      const { results } = await runQuickBench(out, [
        "--servers",
        "2",
        "--rounds",
        "3",
        "--concurrency",
        "64",
        "--scenarios",
        "sqlite-normal,store-sqlite-normal",
      ]);
      expect(results.settings.serversPerScenario).toBe(2);
      const processes = (scenario: string) =>
        results.results.find((r) => r.scenario === scenario)?.rounds.map((r) => r.process);
      expect(processes("baseline")).toEqual([0, 1, 0]);
      expect(processes("sqlite-normal")).toEqual([0, 1, 0]);
      // The store alone has no server to vary.
      expect(processes("store-sqlite-normal")).toEqual([0, 0, 0]);
      expect(results.notes).toContainEqual(expect.stringMatching(/^each RPC scenario ran on 2 server processes/));
      for (const r of results.results) {
        expect(r.errors, r.scenario).toBe(0);
      }
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }, 120_000);
});
