import { createIdempotencyInterceptor } from "../src/server/idempotency-interceptor.js";
import type { BenchService } from "./bench-service.js";
import { createPayment } from "./payment-handler.js";
import type { ServerSetup } from "./scenarios.js";
import { type BenchStoreOptions, openBenchStore } from "./bench-stores.js";

/** What a server child needs to set up its scenario. */
export interface BenchServiceOptions {
  readonly setup: ServerSetup;
  /** For the interceptor: its store, with a SQLite file already prefilled when the scenario asks for it. */
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
    case "interceptor": {
      if (options.store === undefined) {
        throw new Error("an interceptor scenario needs a store");
      }
      const store = await openBenchStore(options.store);
      return { createPayment, interceptors: [createIdempotencyInterceptor({ store })], close: () => store.close() };
    }
  }
}
