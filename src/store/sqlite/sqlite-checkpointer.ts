import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { Database } from "better-sqlite3";

/** Stops background checkpoints of one database. */
export interface SqliteCheckpointer {
  /**
   * The error of the latest checkpoint when it failed, undefined when it
   * succeeded (or none ran yet).
   */
  readonly failure: Error | undefined;
  /**
   * Stops checkpointing and closes the worker's connection to the file, so
   * that the store's own connection is the last one when it closes (and
   * checkpoints and removes the WAL as SQLite does on a last close).
   */
  stop(): Promise<void>;
}

/** Options of `startSqliteCheckpointer`. */
export interface SqliteCheckpointerOptions {
  /**
   * Called when checkpoints start failing (not for a busy database: that
   * only postpones them), then at most once a minute while they keep
   * failing, with SQLite's error and how many failed in a row.
   */
  readonly onFailure?: (error: Error, failuresInARow: number) => void;
}

/** How often the worker checkpoints each database. */
const checkpointIntervalMs = 50;
/** While checkpoints of a database keep failing, the store hears of it at most this often. */
const failureReportIntervalMs = 60_000;
/** What `wal_autocheckpoint` goes back to when the worker cannot do it: SQLite's default. */
const autocheckpointPages = 1000;
/**
 * The store's connection still checkpoints past this many WAL pages (16 MB
 * with 4 KB pages). Under steady writes a PASSIVE checkpoint never catches
 * up: commits land while it runs, and a writer starts the WAL over only
 * after a checkpoint that left nothing behind. Without this backstop the WAL
 * grew by about 100 MB a second with the store alone. The worker has copied
 * all but the last few frames by then, so the connection's own checkpoint is
 * short, and it lets the next commit start the WAL over.
 */
const backstopPages = 4096;

/**
 * Moves the bulk of the WAL checkpoints of a store's connection into a
 * worker thread, and reports checkpoints that fail (`onFailure`): a WAL
 * that cannot be copied back grows with every write.
 *
 * SQLite checkpoints in the connection whose commit crosses
 * `wal_autocheckpoint` pages: with better-sqlite3 that is a call on the event
 * loop that copies the WAL into the database file and fsyncs both, every few
 * hundred operations. Here a worker thread, with a connection of its own to
 * the same file, runs a PASSIVE checkpoint every 50 ms, which never blocks
 * the store's writes, and the store's connection checkpoints only past
 * `backstopPages`, to let the WAL start over. One worker serves every store
 * of the process. When the worker cannot open the file or dies, the store's
 * connection checkpoints at SQLite's default again.
 */
export function startSqliteCheckpointer(
  db: Database,
  path: string,
  options: SqliteCheckpointerOptions = {},
): SqliteCheckpointer {
  const id = nextId++;
  let worker: Worker;
  try {
    worker = sharedWorker();
  } catch {
    // No worker here (a bundle without better-sqlite3 beside it, a runtime
    // without worker threads): the connection keeps checkpointing by itself.
    return { failure: undefined, stop: async () => {} };
  }
  let failure: Error | undefined;
  outcomes.set(id, (message) => {
    if (message.type === "checkpointed") {
      failure = undefined;
      return;
    }
    failure = Object.assign(new Error(message.message), { code: message.code });
    try {
      options.onFailure?.(failure, message.failures);
    } catch {
      // A failing listener must not stop the reports.
    }
  });
  db.pragma(`wal_autocheckpoint = ${backstopPages}`);
  const fallBack = () => {
    if (db.open) {
      db.pragma(`wal_autocheckpoint = ${autocheckpointPages}`);
    }
  };
  fallbacks.set(id, fallBack);
  worker.postMessage({ type: "add", id, path } satisfies ToWorker);
  let stopping: Promise<void> | undefined;
  return {
    get failure() {
      return failure;
    },
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        if (!fallbacks.has(id)) {
          // The worker already failed for this database, or is gone.
          resolve();
          return;
        }
        removals.set(id, resolve);
        // Held until the worker answers, or an awaited close() would find
        // the loop empty and the process would exit with it unsettled.
        worker.ref();
        worker.postMessage({ type: "remove", id } satisfies ToWorker);
      });
      return stopping;
    },
  };
}

type ToWorker = { type: "add"; id: number; path: string } | { type: "remove"; id: number };
/** Checkpoints that failed (the first time, then once a minute), or one that succeeded after failures. */
type CheckpointOutcome =
  | { type: "checkpoint_failed"; id: number; message: string; code: string | undefined; failures: number }
  | { type: "checkpointed"; id: number };
type FromWorker = { type: "failed"; id: number } | { type: "removed"; id: number } | CheckpointOutcome;

let nextId = 1;
let shared: Worker | undefined;
/** Per registered database: how its connection checkpoints again when the worker cannot. */
const fallbacks = new Map<number, () => void>();
/** Per database being removed: resolves its `stop()`. */
const removals = new Map<number, () => void>();
/** Per registered database: what its checkpoints did, when they fail or recover. */
const outcomes = new Map<number, (message: CheckpointOutcome) => void>();

// Plain CommonJS for `eval`, so that it runs the same from TypeScript sources
// (tests, tsx) and from the compiled package.
const workerSource = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const databases = new Map();
// Per database that fails: { failures, reportedAt }.
const failing = new Map();
let timer;
function checkpointAll() {
  for (const [id, db] of databases) {
    try {
      db.pragma("wal_checkpoint(PASSIVE)");
      if (failing.delete(id)) parentPort.postMessage({ type: "checkpointed", id });
    } catch (error) {
      const code = typeof error?.code === "string" ? error.code : undefined;
      // Busy only postpones the checkpoint: the next tick tries again.
      if (code !== undefined && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"))) continue;
      const state = failing.get(id) ?? { failures: 0, reportedAt: -Infinity };
      state.failures++;
      failing.set(id, state);
      const now = Date.now();
      if (now - state.reportedAt < workerData.reportIntervalMs) continue;
      state.reportedAt = now;
      parentPort.postMessage({ type: "checkpoint_failed", id, message: String(error?.message ?? error), code, failures: state.failures });
    }
  }
}
parentPort.on("message", (message) => {
  if (message.type === "add") {
    try {
      databases.set(message.id, new Database(message.path, { fileMustExist: true, timeout: 0 }));
      timer ??= setInterval(checkpointAll, workerData.intervalMs);
    } catch {
      parentPort.postMessage({ type: "failed", id: message.id });
    }
  } else if (message.type === "remove") {
    const db = databases.get(message.id);
    databases.delete(message.id);
    failing.delete(message.id);
    try {
      db?.close();
    } catch {}
    if (databases.size === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
    parentPort.postMessage({ type: "removed", id: message.id });
  }
});
`;

function sharedWorker(): Worker {
  if (shared !== undefined) {
    return shared;
  }
  const driver = createRequire(import.meta.url).resolve("better-sqlite3");
  const started = new Worker(workerSource, {
    eval: true,
    workerData: { driver, intervalMs: checkpointIntervalMs, reportIntervalMs: failureReportIntervalMs },
  });
  started.on("message", (message: FromWorker) => {
    if (message.type === "checkpoint_failed" || message.type === "checkpointed") {
      outcomes.get(message.id)?.(message);
      return;
    }
    outcomes.delete(message.id);
    if (message.type === "failed") {
      fallbacks.get(message.id)?.();
      fallbacks.delete(message.id);
    } else {
      fallbacks.delete(message.id);
    }
    removals.get(message.id)?.();
    removals.delete(message.id);
    if (removals.size === 0) {
      started.unref();
    }
  });
  const lost = () => {
    if (shared === started) {
      shared = undefined;
    }
    for (const fallBack of fallbacks.values()) fallBack();
    fallbacks.clear();
    outcomes.clear();
    for (const resolve of removals.values()) resolve();
    removals.clear();
  };
  started.on("error", lost);
  started.on("exit", lost);
  // Checkpoints are housekeeping: they never keep the process alive. After
  // the listeners, which would take the worker's port back into the loop.
  started.unref();
  shared = started;
  return started;
}
