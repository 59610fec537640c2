import { join } from "node:path";
import type { RoundResult } from "./bench-results.js";
import type { BenchServiceOptions } from "./bench-services.js";
import type { BenchStoreOptions } from "./bench-stores.js";
import { type BenchChild, forkChild } from "./child-ipc.js";
import type { CpuPinning } from "./cpu-pinning.js";
import type { LayerApi } from "./layer-main.js";
import type { BenchProtocol, LoadApi } from "./load-main.js";
import { prefillPostgresRecords } from "./postgres-prefill.js";
import { dropPostgresSchemas } from "./postgres-schemas.js";
import { benchRedisUrl } from "./redis-keys.js";
import type { Scenario, ServerSetup } from "./scenarios.js";
import type { ServerApi } from "./server-main.js";
import { createPostgresCpuMeter, createRedisCpuMeter, type ServiceCpuMeter } from "./service-cpu.js";
import { copyPrefilledSqlite } from "./sqlite-prefill.js";
import type { StoreApi } from "./store-main.js";

/** Runs one scenario at a concurrency for a while and measures it. */
export type ScenarioRunner = (
  concurrency: number,
  durationMs: number,
) => Promise<Omit<RoundResult, "round" | "process">>;

/** What the scenarios need from the run. */
export interface ScenarioEnvironment {
  /** A directory of this run for SQLite files; removed by the caller. */
  readonly tmp: string;
  /** Where prefilled SQLite files are cached between runs. */
  readonly cacheDir: string;
  readonly postgresUrl: string;
  readonly protocol: BenchProtocol;
  /** When set, server and layer processes write CPU profiles to a folder per scenario here. */
  readonly cpuProfileDir?: string;
  /** When set, the CPUs the server side and the load generator are pinned to. */
  readonly pinning?: CpuPinning;
  /**
   * Server processes per RPC scenario, each with a store of its own. A
   * process's throughput depends on how its JIT and its HTTP/2 writes settle,
   * which differs from process to process: rounds take turns among several.
   */
  readonly serversPerScenario: number;
  /** Progress lines. */
  readonly log: (line: string) => void;
  /** Facts for the results' notes. */
  readonly note: (line: string) => void;
}

/** The started scenarios, and how to stop them all. */
export interface StartedScenarios {
  /** Per scenario, one runner per process serving it: RPC scenarios have `serversPerScenario`, the others one. */
  readonly runners: ReadonlyMap<string, readonly ScenarioRunner[]>;
  /** Stops every child process, closes the meters and drops the PostgreSQL schemas. Never throws. */
  stop(): Promise<void>;
}

/** Keys the replay scenario completes before its first round and then cycles through. */
const replayKeyCount = 1000;

/**
 * Starts a load generator child process, a server child process per RPC
 * scenario, a store child process per store scenario and a layer child
 * process per layer scenario, and returns a runner for each scenario. On
 * failure everything started so far is stopped.
 */
export async function startScenarios(
  scenarios: readonly Scenario[],
  env: ScenarioEnvironment,
): Promise<StartedScenarios> {
  const children: BenchChild<LoadApi | ServerApi | StoreApi | LayerApi>[] = [];
  const meters: ServiceCpuMeter[] = [];
  const postgresSchemas: string[] = [];
  let redisMeter: ServiceCpuMeter | undefined;
  const stop = async () => {
    await Promise.allSettled(
      children.map((child) =>
        Promise.race([child.stop("stop"), new Promise((resolve) => setTimeout(resolve, 10_000))]).finally(() =>
          child.kill(),
        ),
      ),
    );
    await Promise.allSettled(meters.map((meter) => meter.close()));
    if (postgresSchemas.length > 0) {
      await dropPostgresSchemas(env.postgresUrl, postgresSchemas).catch((error: unknown) =>
        env.log(`could not drop PostgreSQL schemas ${postgresSchemas.join(", ")}: ${String(error)}`),
      );
    }
  };

  const storeOptions = async (
    scenario: Scenario,
    kind: BenchStoreOptions["kind"],
    prefillRows: number,
    instance = 0,
  ) => {
    if (kind === "postgres") {
      const suffix = `${process.pid}_${scenario.name.replace(/-/g, "_")}_${instance}`;
      const postgresSchema = `connect_idempotency_bench_${suffix}`;
      postgresSchemas.push(postgresSchema);
      const postgresApplicationName = `connect-idempotency-bench-${suffix}`;
      const meter = await createPostgresCpuMeter(env.postgresUrl, postgresApplicationName);
      meters.push(meter);
      if (prefillRows > 0) {
        const report = await prefillPostgresRecords(env.postgresUrl, postgresSchema, prefillRows);
        if (instance === 0)
          env.note(
            `${scenario.name}: ${prefillRows.toLocaleString("en-US")} records inserted into ${postgresSchema} in ` +
              `${(report.insertMs / 1000).toFixed(1)} s (VACUUM ANALYZE ${(report.vacuumMs / 1000).toFixed(1)} s)`,
          );
      }
      return { options: { kind, postgresUrl: env.postgresUrl, postgresSchema, postgresApplicationName }, meter };
    }
    const sqlitePath = join(env.tmp, `${scenario.name}-${instance}.db`);
    if (prefillRows > 0) {
      const report = await copyPrefilledSqlite(prefillRows, env.cacheDir, sqlitePath);
      if (instance === 0)
        env.note(
          `${scenario.name}: ${prefillRows.toLocaleString("en-US")} records copied from ${report.cachedPath}` +
            (report.built
              ? ` (built by this run in ${(report.buildMs / 1000).toFixed(1)} s)`
              : " (cached by an earlier run)"),
        );
    }
    return { options: { kind, sqlitePath }, meter: undefined };
  };

  const withServiceCpu = async <T extends { readonly calls: number }>(
    meter: ServiceCpuMeter | undefined,
    run: () => Promise<T>,
  ): Promise<T & { serviceCpuMicrosPerCall?: number }> => {
    if (meter === undefined) {
      return run();
    }
    const end = await meter.begin();
    const stats = await run();
    return { ...stats, serviceCpuMicrosPerCall: (await end()) / Math.max(1, stats.calls) };
  };

  const serverCpu = env.pinning === undefined ? {} : { cpu: env.pinning.serverCpu };
  const profiled = (scenario: Scenario) => ({
    execArgv:
      env.cpuProfileDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${join(env.cpuProfileDir, scenario.name)}`],
  });
  // What a server or layer process needs for `setup`, and the meter of its
  // backing service: the store's, or one Redis meter shared by the peers.
  const serviceSetup = async (
    setup: ServerSetup,
    scenario: Scenario,
    instance = 0,
  ): Promise<{ options: BenchServiceOptions; meter: ServiceCpuMeter | undefined }> => {
    if (setup.kind === "interceptor" || setup.kind === "plain-row" || setup.kind === "floor") {
      const kind = setup.kind === "interceptor" ? setup.store : setup.db;
      const prefillRows = setup.kind === "plain-row" ? 0 : (setup.prefillRows ?? 0);
      const store = await storeOptions(scenario, kind, prefillRows, instance);
      return { options: { setup, store: store.options }, meter: store.meter };
    }
    if (setup.kind !== "plain" && redisMeter === undefined) {
      redisMeter = await createRedisCpuMeter(benchRedisUrl);
      meters.push(redisMeter);
    }
    return { options: { setup }, meter: setup.kind === "plain" ? undefined : redisMeter };
  };

  /** Starts one server process of an RPC scenario, and returns the runner that measures it. */
  const startServer = async (
    scenario: Scenario,
    options: BenchServiceOptions,
    meter: ServiceCpuMeter | undefined,
    load: BenchChild<LoadApi>,
  ): Promise<ScenarioRunner> => {
    const server = forkChild<ServerApi>(new URL("./server-main.ts", import.meta.url), {
      ...profiled(scenario),
      ...serverCpu,
    });
    children.push(server);
    const target = { baseUrl: await server.call("start", options), protocol: env.protocol };
    env.log(`${scenario.name}: server process ${server.pid}`);
    const keys = scenario.keys ?? "new";
    if (keys === "replay") {
      await load.call("prepareReplay", { ...target, count: replayKeyCount });
    }
    return async (concurrency, durationMs) => {
      const cpuBefore = await server.call("cpuMicros");
      const stats = await withServiceCpu(meter, () => load.call("run", { ...target, concurrency, durationMs, keys }));
      const cpuAfter = await server.call("cpuMicros");
      return { ...stats, serverCpuMicrosPerCall: (cpuAfter - cpuBefore) / Math.max(1, stats.calls) };
    };
  };

  try {
    const load = forkChild<LoadApi>(new URL("./load-main.ts", import.meta.url), {
      ...(env.pinning === undefined ? {} : { cpu: env.pinning.loadCpu }),
    });
    children.push(load);
    env.log(`load generator process ${load.pid}`);
    const runners = new Map<string, ScenarioRunner[]>();
    for (const scenario of scenarios) {
      if (scenario.kind === "store") {
        if (scenario.store === undefined) {
          throw new Error(`scenario ${scenario.name} has no store`);
        }
        const child = forkChild<StoreApi>(new URL("./store-main.ts", import.meta.url), serverCpu);
        children.push(child);
        const { options, meter } = await storeOptions(scenario, scenario.store, 0);
        await child.call("start", {
          ...options,
          ...(scenario.groupCommit === false ? { groupCommit: false } : {}),
          ...(scenario.floor === true ? { floor: true } : {}),
        });
        env.log(`${scenario.name}: store process ${child.pid}`);
        runners.set(scenario.name, [
          (concurrency, durationMs) => withServiceCpu(meter, () => child.call("run", { concurrency, durationMs })),
        ]);
        continue;
      }
      const setup = scenario.server;
      if (setup === undefined) {
        throw new Error(`scenario ${scenario.name} has no server setup`);
      }
      if (scenario.kind === "layer") {
        const { options, meter } = await serviceSetup(setup, scenario);
        const child = forkChild<LayerApi>(new URL("./layer-main.ts", import.meta.url), {
          ...profiled(scenario),
          ...serverCpu,
        });
        children.push(child);
        await child.call("start", options);
        env.log(`${scenario.name}: layer process ${child.pid}`);
        const keys = scenario.keys ?? "new";
        if (keys === "replay") {
          await child.call("prepareReplay", { count: replayKeyCount });
        }
        runners.set(scenario.name, [
          (concurrency, durationMs) =>
            withServiceCpu(meter, () => child.call("run", { concurrency, durationMs, keys })),
        ]);
        continue;
      }
      const instances: ScenarioRunner[] = [];
      for (let instance = 0; instance < env.serversPerScenario; instance++) {
        const { options, meter } = await serviceSetup(setup, scenario, instance);
        instances.push(await startServer(scenario, options, meter, load));
      }
      runners.set(scenario.name, instances);
    }
    return { runners, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
