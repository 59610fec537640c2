// `npm run soak`: 100,000 calls (first calls, replays, mismatches, in-flight
// duplicates, handler errors and their retries, invalid request IDs) against
// one server process started with --expose-gc, checking every answer, and
// the server's heap and active handles after gc at the start and at the end.
// A leak shows as heap or handles that grow with the number of calls.
//
//   npm run soak -- [--calls 100000] [--concurrency 16] [--seed 14]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command, InvalidArgumentError } from "commander";
import { describeResources, mb, runSoak } from "./soak-run.js";

const positiveInteger = (value: string) => {
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || parsed < 1) throw new InvalidArgumentError("must be a positive integer.");
  return parsed;
};

const options = new Command("npm run soak --")
  .description("Soaks one idempotency server process and reports its heap and handles after gc.")
  .option("--calls <n>", "calls in all", positiveInteger, 100_000)
  .option("--concurrency <n>", "calls in flight at once", positiveInteger, 16)
  .option("--seed <n>", "seed of the mix", positiveInteger, 14)
  .option("--warmup <n>", "calls before the start measurement", positiveInteger, 5_000)
  .parse()
  .opts<{ calls: number; concurrency: number; seed: number; warmup: number }>();

const dataDir = mkdtempSync(join(tmpdir(), "soak-"));
try {
  const report = await runSoak({
    calls: options.calls,
    concurrency: options.concurrency,
    seed: options.seed,
    warmupCalls: options.warmup,
    dataDir,
    log: (line) => console.log(line),
  });
  const { cold, start, end } = report;
  const count = (r: Readonly<Record<string, number>>) => Object.values(r).reduce((a, b) => a + b, 0);
  console.log(
    [
      `${report.calls} calls in ${(report.elapsedMs / 1000).toFixed(1)} s (${Math.round((report.calls * 1000) / report.elapsedMs)}/s), seed ${options.seed}`,
      `mix: ${Object.entries(report.sent)
        .map(([kind, n]) => `${kind} ${n}`)
        .join(", ")}`,
      `wrong answers: ${report.wrongAnswers.count}${report.wrongAnswers.first.map((line) => `\n  ${line}`).join("")}`,
      `handler runs: ${report.executions.got} (the mix calls for ${report.executions.expected}); request IDs run other than once: ${report.runsOtherThanOnce}`,
      `heap used after gc: cold ${mb(cold.heapUsedBytes)}, start ${mb(start.heapUsedBytes)}, end ${mb(end.heapUsedBytes)} ` +
        `(growth ${mb(end.heapUsedBytes - start.heapUsedBytes)} over ${report.calls - options.warmup} calls)`,
      `RSS: cold ${mb(cold.rssBytes)}, start ${mb(start.rssBytes)}, end ${mb(end.rssBytes)}`,
      `active resources: start ${count(start.activeResources)} (${describeResources(start.activeResources)})`,
      `                  end   ${count(end.activeResources)} (${describeResources(end.activeResources)})`,
    ].join("\n"),
  );
  const ok =
    report.wrongAnswers.count === 0 &&
    report.runsOtherThanOnce === 0 &&
    report.executions.got === report.executions.expected;
  process.exitCode = ok ? 0 : 1;
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
