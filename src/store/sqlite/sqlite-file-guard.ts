import { type Stats, statSync } from "node:fs";
import type { Database } from "better-sqlite3";
import type { SqliteStoreProblem } from "./sqlite-store-problem.js";

/** What `createSqliteFileGuard` watches. */
export interface SqliteFileGuardOptions {
  /** The store's connection, which checkpoints when the WAL is past its limit. */
  readonly db: Database;
  /** The database file, absolute. */
  readonly path: string;
  /** Writes are refused while the WAL is larger than this. */
  readonly maxWalBytes: number;
  /** Where problems go (see `SqliteStoreProblem`). */
  readonly report: (problem: SqliteStoreProblem) => void;
  /** The latest error of the background checkpoints, if they fail: named when the WAL passes its limit. */
  readonly checkpointError?: () => unknown;
}

/**
 * Decides before each transaction of a store whether its files still allow
 * it (`SqliteBatchExecutorOptions.admit`).
 */
export interface SqliteFileGuard {
  /** The error to refuse a transaction with, or undefined. */
  admit(write: boolean): Error | undefined;
}

/** The files are looked at no more often than this: a few stat calls, a few microseconds. */
export const sqliteFileCheckIntervalMs = 50;
/** A WAL past its limit is checkpointed (on the event loop) at most this often. */
const truncateRetryMs = 1000;

const companions = ["", "-wal", "-shm"] as const;

/**
 * Watches the files of an open store, at most every 50 ms and only when a
 * transaction is about to run (no timer):
 *
 * - Their identity (device and inode). When the database file, its `-wal`
 *   or its `-shm` is gone or is another file than the one opened, every
 *   operation fails from then on: this connection still writes into the
 *   deleted file, which no other process and no restart will ever read, so
 *   that completed request IDs would run again there. SQLite reports
 *   nothing in WAL mode; deleting the database file alone made later
 *   statements fail with SQLITE_CORRUPT or SQLITE_NOTADB once a new process
 *   created a file under the same name.
 * - The WAL's size. Past `maxWalBytes` (checkpoints fail, or a reader that
 *   never ends holds them back) it runs a TRUNCATE checkpoint, at most once
 *   a second, and refuses writes while the WAL stays that large, rather
 *   than fill the disk.
 *
 * A store opened by path that is a symlink follows it, as SQLite does.
 */
export function createSqliteFileGuard(options: SqliteFileGuardOptions): SqliteFileGuard {
  const { db, path, maxWalBytes, report } = options;
  // What each file was when the store opened it; a companion that did not
  // exist yet is learned when it first appears.
  const opened = new Map<string, Stats>();
  for (const suffix of companions) {
    const stats = statOf(path + suffix);
    if (stats !== undefined) opened.set(suffix, stats);
  }
  if (!opened.has("")) {
    throw new Error(`createSqliteStore: the SQLite file ${path} is gone right after opening it`);
  }
  let checkedAt = Number.NEGATIVE_INFINITY;
  let lost: Error | undefined;
  let walTooLarge: Error | undefined;
  let truncatedAt = Number.NEGATIVE_INFINITY;

  function inspect(now: number): void {
    let walBytes = 0;
    for (const suffix of companions) {
      let stats: Stats | undefined;
      try {
        stats = statSync(path + suffix, { throwIfNoEntry: false });
      } catch {
        // Cannot look (permissions of the directory changed): no verdict.
        continue;
      }
      const known = opened.get(suffix);
      if (stats === undefined) {
        if (known !== undefined) {
          fileLost(`${path}${suffix} is gone`);
          return;
        }
        continue;
      }
      if (known === undefined) {
        opened.set(suffix, stats);
      } else if (stats.dev !== known.dev || stats.ino !== known.ino) {
        fileLost(`${path}${suffix} is another file now`);
        return;
      }
      if (suffix === "-wal") walBytes = stats.size;
    }
    if (walBytes > maxWalBytes && now - truncatedAt >= truncateRetryMs) {
      truncatedAt = now;
      let failure: unknown;
      try {
        // Copies what is left and starts the WAL over at 0 bytes, unless a
        // reader still needs it (busy) or the database file cannot be written.
        db.pragma("wal_checkpoint(TRUNCATE)");
      } catch (error) {
        failure = error;
      }
      walBytes = statOf(`${path}-wal`)?.size ?? 0;
      if (walBytes > maxWalBytes) {
        walLimit(walBytes, failure ?? options.checkpointError?.());
        return;
      }
    }
    if (walBytes <= maxWalBytes) walTooLarge = undefined;
  }

  function fileLost(what: string): void {
    lost = Object.assign(
      new Error(
        `createSqliteStore: the SQLite file ${path} was deleted or replaced while the store had it open (${what}); ` +
          "the store refuses every operation, since what it wrote now would be lost and other processes would not see it. " +
          "Restart with the original file (a new file forgets every completed request ID, which then runs again)",
      ),
      { code: "ERR_CONNECT_IDEMPOTENCY_SQLITE_FILE_LOST" },
    );
    report({ kind: "file_lost", path, message: lost.message });
  }

  function walLimit(walBytes: number, cause: unknown): void {
    if (walTooLarge !== undefined) {
      return;
    }
    const because =
      cause === undefined
        ? "checkpoints cannot copy it back into the database file (a reader that never ends holds them back?)"
        : `checkpoints fail: ${messageOf(cause)}`;
    walTooLarge = Object.assign(
      new Error(
        `createSqliteStore: the write-ahead log ${path}-wal has grown to ${formatWalBytes(walBytes)}, past maxWalBytes ` +
          `(${formatWalBytes(maxWalBytes)}), because ${because}; the store refuses writes until a checkpoint succeeds ` +
          "(is the database file read-only or immutable, or the disk failing?)",
        { cause },
      ),
      { code: "ERR_CONNECT_IDEMPOTENCY_SQLITE_WAL_LIMIT" },
    );
    report({ kind: "wal_limit", path, message: walTooLarge.message, error: cause });
  }

  return {
    admit(write) {
      if (lost === undefined) {
        const now = performance.now();
        if (now - checkedAt >= sqliteFileCheckIntervalMs) {
          checkedAt = now;
          inspect(now);
        }
      }
      return lost ?? (write ? walTooLarge : undefined);
    },
  };
}

function statOf(path: string): Stats | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/** A size of the WAL or its limit for messages: `1 GiB`, `12.6 MiB`, `unlimited`. */
export function formatWalBytes(bytes: number): string {
  if (bytes === Number.POSITIVE_INFINITY) return "unlimited";
  return bytes >= 1 << 30 && bytes % (1 << 30) === 0
    ? `${bytes / (1 << 30)} GiB`
    : `${(bytes / (1 << 20)).toFixed(1)} MiB`;
}

function messageOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return typeof code === "string" ? `${code}: ${message}` : message;
}
