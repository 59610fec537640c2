import { createIdempotencyInterceptor } from "../src/server/idempotency-interceptor.js";
import type { ReplayCacheOptions } from "../src/server/replay-cache.js";
import type { BenchService } from "./bench-service.js";
import { createPayment } from "./payment-handler.js";
import type { ServerSetup } from "./scenarios.js";
import { type BenchStoreOptions, openBenchStore, required } from "./bench-stores.js";
import { createFloorService } from "./floor-services.js";
import { createRowBaselineService, createRowCommitService } from "./payment-row-services.js";

/**
 * The replay cache of the scenarios that turn it on: room for far more than
 * the replayed keys, and a TTL longer than a run, so that every duplicate
 * after the first hits it.
 */
export const benchReplayCache: ReplayCacheOptions = { maxBytes: 64 * 1024 * 1024, ttlMs: 60 * 60_000 };

/** What a server child needs to set up its scenario. */
export interface BenchServiceOptions {
  readonly setup: ServerSetup;
  /**
   * For the interceptor: its store, with a SQLite file already prefilled when
   * the scenario asks for it; for `plain-row`, the database the handler writes to.
   */
  readonly store?: BenchStoreOptions;
}

/** Builds the service of one server scenario. */
export async function createBenchService(options: BenchServiceOptions): Promise<BenchService> {
  const { setup } = options;
  switch (setup.kind) {
    case "plain":
      return { createPayment, interceptors: [], close: async () => {} };
    // Peers load on demand, so that no other server process carries their dependencies.
    case "powertools":
      return (await import("./peers/powertools-service.js")).createPowertoolsService();
    case "node-idempotency":
      return (await import("./peers/node-idempotency-service.js")).createNodeIdempotencyService();
    case "plain-row":
      if (options.store === undefined) {
        throw new Error("a plain-row scenario needs a database");
      }
      return createRowBaselineService(options.store);
    case "floor":
      return createFloorService(setup, required(options.store, "store"));
    case "interceptor": {
      if (options.store === undefined) {
        throw new Error("an interceptor scenario needs a store");
      }
      const store = await openBenchStore(options.store);
      const interceptorOptions = setup.replayCache === true ? { replayCache: benchReplayCache } : {};
      if (setup.handler === "commit") {
        return createRowCommitService(store, interceptorOptions);
      }
      return {
        createPayment,
        interceptors: [createIdempotencyInterceptor({ store, ...interceptorOptions })],
        close: () => store.close(),
      };
    }
  }
}
