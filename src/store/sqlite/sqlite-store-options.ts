import { type Clock, resolveClock } from "../../time/clock.js";
import type { SweepReport } from "../record-sweeper.js";
import { quoteSqliteIdentifier, sqliteDefaultTable } from "./sqlite-schema.js";
import type { SqliteIntegrityCheck } from "./sqlite-integrity-check.js";
import type { SqliteStoreProblem } from "./sqlite-store-problem.js";
import type { SqliteDurability, SqliteStoreOptions } from "./sqlite-store.js";

/** `SqliteStoreOptions` with every default applied, checked. */
export interface SqliteStoreSettings {
  readonly path: string;
  readonly table: string;
  readonly durability: SqliteDurability;
  readonly busyTimeoutMs: number;
  readonly sweepIntervalMs: number;
  readonly sweepBatchSize: number;
  readonly clock: Clock;
  readonly onSweep: ((report: SweepReport) => void) | undefined;
  readonly onProblem: ((problem: SqliteStoreProblem) => void) | undefined;
  readonly groupCommit: boolean;
  readonly maxWalBytes: number;
  readonly integrityCheck: SqliteIntegrityCheck;
}

/**
 * The default `busyTimeoutMs`: 5 s that an operation waits for another
 * process's write lock, far past a write transaction's milliseconds, so
 * that only a process that holds the lock for good makes calls fail.
 */
export const defaultSqliteBusyTimeoutMs = 5000;
/**
 * The default `maxWalBytes`: 1 GiB of write-ahead log, which only a
 * checkpoint that keeps failing lets it reach, well before a disk fills.
 */
export const defaultSqliteMaxWalBytes = 1 << 30;
/**
 * The default `sweepIntervalMs`: a minute between sweeps. Expired records
 * count as absent whether swept or not, so sweeping only bounds the file's
 * size, and once a minute keeps each sweep small.
 */
export const defaultSqliteSweepIntervalMs = 60_000;
/**
 * The default `sweepBatchSize`: 500 records per delete statement, one short
 * write transaction, so that a sweep holds the write lock only briefly
 * between the claims of every process on the file.
 */
export const defaultSqliteSweepBatchSize = 500;

const optionNames: ReadonlySet<string> = new Set<keyof SqliteStoreOptions>([
  "path",
  "durability",
  "busyTimeoutMs",
  "sweepIntervalMs",
  "sweepBatchSize",
  "clock",
  "onSweep",
  "onProblem",
  "table",
  "groupCommit",
  "maxWalBytes",
  "integrityCheck",
]);

/**
 * Checks the options of `createSqliteStore` before any file is touched and
 * applies the defaults. Throws for a missing or empty `path` (which SQLite
 * would open as a private database that forgets everything on restart), for
 * option names it does not know (a misspelt `busyTimeout` would silently keep
 * the default), and for values out of range.
 */
export function resolveSqliteStoreOptions(options: SqliteStoreOptions): SqliteStoreSettings {
  if (typeof options !== "object" || options === null) {
    throw new Error('createSqliteStore: pass an options object, such as { path: "idempotency.db" }');
  }
  const unknown = Object.keys(options).filter((name) => !optionNames.has(name));
  if (unknown.length > 0) {
    throw new Error(
      `createSqliteStore: unknown option${unknown.length === 1 ? "" : "s"} ${unknown.map((name) => JSON.stringify(name)).join(", ")}; ` +
        `the options are ${[...optionNames].join(", ")}`,
    );
  }
  const { path } = options;
  if (typeof path !== "string" || path.trim() === "") {
    throw new Error(
      `createSqliteStore: path must name the database file, got ${path === undefined ? "undefined" : JSON.stringify(path)}; ` +
        'pass a file path, or ":memory:" explicitly for a private in-memory database that forgets every request ID on restart',
    );
  }
  const table = options.table ?? sqliteDefaultTable;
  quoteSqliteIdentifier(table);
  const durability = options.durability ?? "normal";
  if (durability !== "normal" && durability !== "full") {
    throw new Error(`createSqliteStore: durability must be "normal" or "full", got ${JSON.stringify(durability)}`);
  }
  return {
    path,
    table,
    durability,
    busyTimeoutMs: atLeast("busyTimeoutMs", options.busyTimeoutMs ?? defaultSqliteBusyTimeoutMs, 0),
    sweepIntervalMs: atLeast("sweepIntervalMs", options.sweepIntervalMs ?? defaultSqliteSweepIntervalMs, 0),
    sweepBatchSize: atLeast("sweepBatchSize", options.sweepBatchSize ?? defaultSqliteSweepBatchSize, 1),
    clock: resolveClock("createSqliteStore", options, Date),
    onSweep: callable("onSweep", options.onSweep),
    onProblem: callable("onProblem", options.onProblem),
    groupCommit: options.groupCommit ?? true,
    maxWalBytes: atLeast("maxWalBytes", options.maxWalBytes ?? defaultSqliteMaxWalBytes, 1, true),
    integrityCheck: oneOf("integrityCheck", options.integrityCheck ?? "quick", ["quick", "full", "off"] as const),
  };
}

function atLeast(name: string, value: unknown, min: number, infinite = false): number {
  if (typeof value !== "number" || Number.isNaN(value) || value < min || (!infinite && !Number.isFinite(value))) {
    throw new Error(`createSqliteStore: ${name} must be a number of at least ${min}, got ${String(value)}`);
  }
  return value;
}

function oneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) {
    throw new Error(
      `createSqliteStore: ${name} must be ${allowed
        .slice(0, -1)
        .map((v) => JSON.stringify(v))
        .join(", ")} or ` + `${JSON.stringify(allowed.at(-1))}, got ${JSON.stringify(value)}`,
    );
  }
  return value as T;
}

function callable<F>(name: string, value: F | undefined): F | undefined {
  if (value !== undefined && typeof value !== "function") {
    throw new Error(`createSqliteStore: ${name} must be a function, got ${typeof value}`);
  }
  return value;
}
