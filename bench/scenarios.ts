/** Where a scenario keeps its idempotency records. */
export type BenchStoreKind = "sqlite-normal" | "sqlite-full" | "postgres";

/** What wraps the handler in the server process. */
export type ServerSetup =
  | { readonly kind: "plain" }
  /** No interceptor; the handler inserts the payment row into `db`, in a transaction of its own. */
  | { readonly kind: "plain-row"; readonly db: BenchStoreKind }
  | {
      readonly kind: "interceptor";
      readonly store: BenchStoreKind;
      readonly prefillRows: number;
      /** `commit`: the handler inserts the payment row in one `commit` of `atomicEffects` with the completion. */
      readonly handler?: "commit";
      /** On: the interceptor's `replayCache` (`benchReplayCache`). */
      readonly replayCache?: true;
    }
  /**
   * No interceptor and no store: the handler between a bare claim and a bare
   * completion (`commit`: the payment row and the completion in one
   * transaction), the least any layer with a durable record writes; see
   * bench/floor-services.ts.
   */
  | {
      readonly kind: "floor";
      readonly db: BenchStoreKind;
      readonly handler?: "commit";
      /** For SQLite: the records in the file before the first call, as for `interceptor`. */
      readonly prefillRows?: number;
    }
  | { readonly kind: "powertools" }
  | { readonly kind: "node-idempotency" };

/** One line of the results table. */
export interface Scenario {
  /** The name `--scenarios` takes. */
  readonly name: string;
  /** What the scenario measures, for the docs and `--help`. */
  readonly description: string;
  /**
   * `rpc`: a server child process answers CreatePayment calls from the load
   * generator child process. `store`: one process calls the store directly.
   * `layer`: one process invokes the server's CreatePayment in-process,
   * interceptors included, with a new key per call and no RPC.
   */
  readonly kind: "rpc" | "store" | "layer";
  /** For `rpc` and `layer`: how the server handles calls. */
  readonly server?: ServerSetup;
  /** For `rpc` and `layer`: every call a new request ID, or duplicates of completed ones. */
  readonly keys?: "new" | "replay";
  /** For `store`: the store that is measured. */
  readonly store?: BenchStoreKind;
  /** For a SQLite `store`: false gives each operation its own transaction, to show what group commit saves. */
  readonly groupCommit?: false;
  /** For a SQLite `store`: the bare statements of `SqliteFloor` instead of the store. */
  readonly floor?: true;
}

/** Every scenario, in the order of the table. */
export const scenarios: readonly Scenario[] = [
  {
    name: "baseline",
    description: "connect-node server, no interceptor",
    kind: "rpc",
    server: { kind: "plain" },
    keys: "new",
  },
  {
    name: "baseline-twin",
    description:
      "a second baseline server, identical, in a process of its own: how far two identical servers land apart",
    kind: "rpc",
    server: { kind: "plain" },
    keys: "new",
  },
  {
    name: "sqlite-normal",
    description: "interceptor + SQLite store, durability normal, every call a new key",
    kind: "rpc",
    server: { kind: "interceptor", store: "sqlite-normal", prefillRows: 0 },
    keys: "new",
  },
  {
    name: "sqlite-floor",
    description:
      "the floor of sqlite-normal: no interceptor; the handler between a bare claim INSERT and completion UPDATE in SQLite (layer-sqlite-floor's)",
    kind: "rpc",
    server: { kind: "floor", db: "sqlite-normal" },
    keys: "new",
  },
  {
    name: "sqlite-full",
    description: "interceptor + SQLite store, durability full (fsync per group commit), every call a new key",
    kind: "rpc",
    server: { kind: "interceptor", store: "sqlite-full", prefillRows: 0 },
    keys: "new",
  },
  {
    name: "replay",
    description: "interceptor + SQLite store (normal) + replayCache, every call a duplicate of a completed key",
    kind: "rpc",
    server: { kind: "interceptor", store: "sqlite-normal", prefillRows: 0, replayCache: true },
    keys: "replay",
  },
  {
    name: "replay-store",
    description: "as replay without the replayCache: every duplicate is answered by the store",
    kind: "rpc",
    server: { kind: "interceptor", store: "sqlite-normal", prefillRows: 0 },
    keys: "replay",
  },
  {
    name: "postgres",
    description: "interceptor + PostgreSQL store, every call a new key",
    kind: "rpc",
    server: { kind: "interceptor", store: "postgres", prefillRows: 0 },
    keys: "new",
  },
  {
    name: "powertools-redis",
    description: "@aws-lambda-powertools/idempotency makeIdempotent + CachePersistenceLayer on Redis, new keys",
    kind: "rpc",
    server: { kind: "powertools" },
    keys: "new",
  },
  {
    name: "node-idempotency-redis",
    description: "@node-idempotency/core + storage-adapter-redis, new keys",
    kind: "rpc",
    server: { kind: "node-idempotency" },
    keys: "new",
  },
  {
    name: "baseline-db",
    description:
      "no interceptor; the handler inserts its payment row into SQLite (durability normal) in its own transaction",
    kind: "rpc",
    server: { kind: "plain-row", db: "sqlite-normal" },
    keys: "new",
  },
  {
    name: "sqlite-commit",
    description:
      "interceptor + SQLite store (normal); the payment row and the completion in one commit of atomicEffects",
    kind: "rpc",
    server: { kind: "interceptor", store: "sqlite-normal", prefillRows: 0, handler: "commit" },
    keys: "new",
  },
  {
    name: "sqlite-commit-floor",
    description:
      "the floor of sqlite-commit: no interceptor; a bare claim INSERT, then the payment row and the completion UPDATE in one group-commit transaction",
    kind: "rpc",
    server: { kind: "floor", db: "sqlite-normal", handler: "commit" },
    keys: "new",
  },
  {
    name: "baseline-db-full",
    description: "as baseline-db with durability full: synchronous = FULL, the WAL synced at every commit",
    kind: "rpc",
    server: { kind: "plain-row", db: "sqlite-full" },
    keys: "new",
  },
  {
    name: "sqlite-commit-full",
    description: "as sqlite-commit with durability full",
    kind: "rpc",
    server: { kind: "interceptor", store: "sqlite-full", prefillRows: 0, handler: "commit" },
    keys: "new",
  },
  {
    name: "baseline-postgres",
    description:
      "no interceptor; the handler inserts its payment row into PostgreSQL (a pool of 10) in its own transaction",
    kind: "rpc",
    server: { kind: "plain-row", db: "postgres" },
    keys: "new",
  },
  {
    name: "postgres-commit",
    description: "interceptor + PostgreSQL store; the payment row and the completion in one commit of atomicEffects",
    kind: "rpc",
    server: { kind: "interceptor", store: "postgres", prefillRows: 0, handler: "commit" },
    keys: "new",
  },
  {
    name: "postgres-commit-floor",
    description:
      "the floor of postgres-commit: no interceptor; the claims of a turn in one bare INSERT, then the payment row and the outcome's UPDATE in one transaction, one round trip",
    kind: "rpc",
    server: { kind: "floor", db: "postgres", handler: "commit" },
    keys: "new",
  },
  {
    name: "sqlite-10k",
    description: "as sqlite-normal, with 10 thousand records in the store before the first call",
    kind: "rpc",
    server: { kind: "interceptor", store: "sqlite-normal", prefillRows: 10_000 },
    keys: "new",
  },
  {
    name: "sqlite-1m",
    description: "as sqlite-normal, with 1 million records in the store before the first call",
    kind: "rpc",
    server: { kind: "interceptor", store: "sqlite-normal", prefillRows: 1_000_000 },
    keys: "new",
  },
  {
    name: "store-sqlite-normal",
    description: "SQLite store alone (durability normal), no RPC: claim + complete pairs per second",
    kind: "store",
    store: "sqlite-normal",
  },
  {
    name: "store-sqlite-full",
    description: "SQLite store alone (durability full), no RPC: claim + complete pairs per second",
    kind: "store",
    store: "sqlite-full",
  },
  {
    name: "store-sqlite-normal-single",
    description: "as store-sqlite-normal, with group commit off: one transaction per operation",
    kind: "store",
    store: "sqlite-normal",
    groupCommit: false,
  },
  {
    name: "store-sqlite-full-single",
    description: "as store-sqlite-full, with group commit off: one transaction and one fsync per operation",
    kind: "store",
    store: "sqlite-full",
    groupCommit: false,
  },
  {
    name: "store-sqlite-floor",
    description:
      "the floor of store-sqlite-normal: the claim's INSERT and the completion's UPDATE as bare better-sqlite3 statements, one transaction per turn of the event loop",
    kind: "store",
    store: "sqlite-normal",
    floor: true,
  },
  {
    name: "store-postgres",
    description: "PostgreSQL store alone, no RPC: claim + complete pairs per second",
    kind: "store",
    store: "postgres",
  },
  {
    name: "layer-none",
    description:
      "the handler alone, invoked in-process as connect-node invokes it, no RPC: the reference of the layer rows",
    kind: "layer",
    server: { kind: "plain" },
  },
  {
    name: "layer-sqlite-normal",
    description: "interceptor + SQLite store (normal) around the handler, in-process, no RPC; new keys",
    kind: "layer",
    server: { kind: "interceptor", store: "sqlite-normal", prefillRows: 0 },
  },
  {
    name: "layer-sqlite-floor",
    description:
      "the floor of layer-sqlite-normal: the handler between store-sqlite-floor's bare claim and completion, in-process, no RPC",
    kind: "layer",
    server: { kind: "floor", db: "sqlite-normal" },
  },
  {
    name: "layer-replay",
    description:
      "interceptor + SQLite store (normal) + replayCache, in-process, no RPC; every call a duplicate of a completed key",
    kind: "layer",
    server: { kind: "interceptor", store: "sqlite-normal", prefillRows: 0, replayCache: true },
    keys: "replay",
  },
  {
    name: "layer-replay-store",
    description: "as layer-replay without the replayCache: every duplicate is answered by the store",
    kind: "layer",
    server: { kind: "interceptor", store: "sqlite-normal", prefillRows: 0 },
    keys: "replay",
  },
  {
    name: "layer-baseline-db",
    description:
      "baseline-db in-process, no RPC: the handler's row in its own transaction (durability normal), no interceptor",
    kind: "layer",
    server: { kind: "plain-row", db: "sqlite-normal" },
  },
  {
    name: "layer-sqlite-commit",
    description: "sqlite-commit in-process, no RPC: the row and the completion in one commit (durability normal)",
    kind: "layer",
    server: { kind: "interceptor", store: "sqlite-normal", prefillRows: 0, handler: "commit" },
  },
  {
    name: "layer-sqlite-commit-floor",
    description: "sqlite-commit-floor in-process, no RPC",
    kind: "layer",
    server: { kind: "floor", db: "sqlite-normal", handler: "commit" },
  },
  {
    name: "layer-sqlite-10k",
    description: "as layer-sqlite-normal, with 10 thousand records in the store before the first call",
    kind: "layer",
    server: { kind: "interceptor", store: "sqlite-normal", prefillRows: 10_000 },
  },
  {
    name: "layer-sqlite-1m",
    description: "as layer-sqlite-normal, with 1 million records in the store before the first call",
    kind: "layer",
    server: { kind: "interceptor", store: "sqlite-normal", prefillRows: 1_000_000 },
  },
  {
    name: "layer-sqlite-floor-10k",
    description: "layer-sqlite-floor on the same 10 thousand record file as layer-sqlite-10k",
    kind: "layer",
    server: { kind: "floor", db: "sqlite-normal", prefillRows: 10_000 },
  },
  {
    name: "layer-sqlite-floor-1m",
    description: "layer-sqlite-floor on the same 1 million record file as layer-sqlite-1m",
    kind: "layer",
    server: { kind: "floor", db: "sqlite-normal", prefillRows: 1_000_000 },
  },
  {
    name: "layer-postgres-10k",
    description:
      "interceptor + PostgreSQL store around the handler, in-process, no RPC; 10 thousand records in its table before the first call",
    kind: "layer",
    server: { kind: "interceptor", store: "postgres", prefillRows: 10_000 },
  },
  {
    name: "layer-postgres-1m",
    description: "as layer-postgres-10k, with 1 million records in the table before the first call",
    kind: "layer",
    server: { kind: "interceptor", store: "postgres", prefillRows: 1_000_000 },
  },
  {
    name: "layer-powertools-redis",
    description:
      "Powertools makeIdempotent + CachePersistenceLayer on Redis around the handler, in-process, no RPC; new keys",
    kind: "layer",
    server: { kind: "powertools" },
  },
  {
    name: "layer-node-idempotency-redis",
    description: "@node-idempotency/core + Redis adapter around the handler, in-process, no RPC; new keys",
    kind: "layer",
    server: { kind: "node-idempotency" },
  },
];

/** Finds scenarios by name; throws on an unknown name so that a typo is not a silent skip. */
export function selectScenarios(names: readonly string[] | undefined): Scenario[] {
  if (names === undefined) {
    return [...scenarios];
  }
  const wanted = new Set(names);
  for (const name of wanted) {
    if (!scenarios.some((s) => s.name === name)) {
      throw new Error(`unknown scenario "${name}"; known: ${scenarios.map((s) => s.name).join(", ")}`);
    }
  }
  // Ratios need the baseline of the same run.
  wanted.add("baseline");
  return scenarios.filter((s) => wanted.has(s.name));
}
