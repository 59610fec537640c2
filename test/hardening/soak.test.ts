// A short soak (`npm run soak` runs the long one): 5,000 calls of every kind
// the interceptor decides (first calls, replays, mismatches, in-flight
// duplicates, handler errors and their retries, invalid request IDs) against
// one server process, with the heap and the active handles of that process
// read after gc once warm and again at the end. They must stay flat: a leak
// of a few hundred bytes per call exceeds the bound.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { describeResources, mb, runSoak } from "../../bench/soak-run.js";

const calls = 5_000;
const warmupCalls = 2_000;
/** Loose: measured growth was 0.2 to 1.1 MB (warm-up noise; 0.2 MB over 95,000 calls); 4 MB over 3,000 calls is 1.4 KB per call. */
const heapGrowthBoundBytes = 4 * 1024 * 1024;

describe("a short soak of one server process", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "soak-test-"));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it(`answers ${calls} mixed calls right, runs each request ID once, and keeps heap and handles flat`, {
    timeout: 180_000,
  }, async () => {
    const report = await runSoak({ calls, concurrency: 16, seed: 1414, warmupCalls, dataDir });
    const growth = report.end.heapUsedBytes - report.start.heapUsedBytes;
    console.log(
      `${report.calls} calls in ${(report.elapsedMs / 1000).toFixed(1)} s; ` +
        `heap after gc ${mb(report.start.heapUsedBytes)} -> ${mb(report.end.heapUsedBytes)} (growth ${mb(growth)}); ` +
        `active resources ${describeResources(report.start.activeResources)} -> ${describeResources(report.end.activeResources)}`,
    );
    expect(report.wrongAnswers).toEqual({ count: 0, first: [] });
    for (const kind of Object.keys(report.sent) as (keyof typeof report.sent)[]) {
      expect(report.sent[kind], kind).toBeGreaterThan(0);
    }
    expect(report.runsOtherThanOnce).toBe(0);
    expect(report.executions.got).toBe(report.executions.expected);
    expect(growth).toBeLessThan(heapGrowthBoundBytes);
    expect(report.end.activeResources).toEqual(report.start.activeResources);
  });
});
