import { close, fsync, fsyncSync, openSync, closeSync } from "node:fs";
import { dirname } from "node:path";

/**
 * Makes the commits of a WAL-mode database durable off the event loop.
 *
 * `synchronous = FULL` makes every COMMIT fsync the write-ahead log before it
 * returns, which for better-sqlite3 means the event loop waits for the disk.
 * The store instead commits with `synchronous = NORMAL` (the same WAL frames,
 * no fsync) and then calls `sync()`, which fsyncs the WAL file in libuv's
 * thread pool; nothing that depends on a commit is released before the
 * fsync that began after it has finished. That is the durability of FULL:
 * a WAL-mode commit writes nothing but WAL frames, and checkpoints sync as
 * they do under FULL.
 */
export interface SqliteWalSync {
  /**
   * Resolves once everything committed before the call is on disk; rejects
   * with the fsync error. Concurrent calls share fsyncs: while one runs, the
   * calls that arrive wait for it and then share the next one.
   */
  sync(): Promise<void>;
  /** Fsyncs begun so far, for diagnostics. */
  readonly syncs: number;
  /** Waits for the fsyncs in flight, then closes the file. Idempotent. */
  close(): Promise<void>;
}

/**
 * Opens the WAL file of a database in WAL mode (which must exist: open the
 * database and run a write first) and syncs its directory once, as SQLite
 * does when it creates a WAL under `synchronous = FULL`.
 */
export function openSqliteWalSync(databasePath: string): SqliteWalSync {
  // Read-write without creating: Windows refuses to flush a read-only handle.
  const fd = openSync(`${databasePath}-wal`, "r+");
  try {
    syncDirectory(dirname(databasePath));
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  let running: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  let syncs = 0;
  let closing: Promise<void> | undefined;

  function start(): Promise<void> {
    queued = undefined;
    syncs++;
    const current = new Promise<void>((resolve, reject) => fsync(fd, (error) => (error ? reject(error) : resolve())));
    running = current;
    const settled = () => {
      if (running === current) running = undefined;
    };
    current.then(settled, settled);
    return current;
  }

  return {
    sync() {
      if (closing !== undefined) {
        return Promise.reject(new Error("createSqliteStore: the store is closed"));
      }
      if (running === undefined) {
        return start();
      }
      // The running fsync may have begun before this commit: wait for it, then
      // share one more with every caller that arrives meanwhile.
      queued ??= running.then(start, start);
      return queued;
    },
    get syncs() {
      return syncs;
    },
    close() {
      closing ??= Promise.allSettled([running, queued]).then(
        () => new Promise<void>((resolve) => close(fd, () => resolve())),
      );
      return closing;
    },
  };
}

function syncDirectory(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    // Some platforms (Windows) cannot open a directory; they have nothing to sync.
    return;
  }
  try {
    fsyncSync(fd);
  } catch {
    // Some file systems refuse to fsync a directory (EINVAL); SQLite ignores that too.
  } finally {
    closeSync(fd);
  }
}
