import { type Stats, statSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { describeSqliteLockHolder } from "./sqlite-lock-holder.js";

/**
 * Opens the database file of a store for reading and writing, in WAL mode,
 * or throws an error whose message says what is wrong with the path: a
 * directory, a missing directory, a file that cannot be written (its mode,
 * owner or immutable flag, or those of its `-wal`, `-shm` or directory), or a
 * file another process keeps locked for longer than `busyTimeoutMs` (the
 * connection waits for it synchronously while opening).
 *
 * Opening read-only is not an option for a store: SQLite opens a file it
 * cannot write read-only without a word, and every claim would then fail,
 * replays included. So a write is tried (and rolled back) before anything
 * else.
 */
export function openSqliteDatabase(path: string, busyTimeoutMs: number): Database.Database {
  const memory = path === ":memory:";
  if (!memory) {
    checkPath(path);
  }
  let db: Database.Database;
  try {
    db = new Database(path, { timeout: busyTimeoutMs });
  } catch (error) {
    throw openError(path, error);
  }
  if (memory) {
    return db;
  }
  try {
    const mode = db.pragma("journal_mode = WAL", { simple: true });
    if (mode !== "wal") {
      throw new Error(`it stays in journal mode ${String(mode)}, and the store needs WAL`);
    }
    // SQLite opened a file it may not write read-only, silently; only a write shows it.
    const version = db.pragma("user_version", { simple: true }) as number;
    db.exec("BEGIN IMMEDIATE");
    try {
      db.pragma(`user_version = ${version}`);
    } finally {
      db.exec("ROLLBACK");
    }
  } catch (error) {
    db.close();
    throw openError(path, error, busyTimeoutMs);
  }
  return db;
}

/** Refuses a path that names a directory or another kind of non-file. */
function checkPath(path: string): void {
  let stats: Stats | undefined;
  try {
    stats = statSync(path, { throwIfNoEntry: false });
  } catch {
    // ENOTDIR, EACCES: SQLite's own error says more below.
    return;
  }
  if (stats?.isDirectory() === true) {
    throw new Error(
      `createSqliteStore: path ${path} is a directory; pass the database file, such as ${path.replace(/\/+$/, "")}/idempotency.db`,
    );
  }
  if (stats !== undefined && !stats.isFile()) {
    throw new Error(`createSqliteStore: path ${path} is not a regular file; pass the SQLite database file`);
  }
}

function openError(path: string, error: unknown, busyTimeoutMs?: number): Error {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  const cause = typeof code === "string" ? `${code}: ${message}` : message;
  let hint = "";
  if (
    typeof code === "string" &&
    (code.startsWith("SQLITE_READONLY") || code.startsWith("SQLITE_CANTOPEN") || code === "SQLITE_IOERR_WRITE")
  ) {
    hint =
      `; the store must write the file, its -wal and -shm files, and (to create those) ${dirname(path)}: ` +
      "check their mode and owner, and `lsattr` for the immutable flag";
  } else if (typeof code === "string" && code.startsWith("SQLITE_BUSY")) {
    hint = `; another connection held the write lock for more than busyTimeoutMs (${busyTimeoutMs} ms)${describeSqliteLockHolder(path)}`;
  }
  return Object.assign(
    new Error(`createSqliteStore: cannot open the SQLite file ${path} for writing (${cause})${hint}`, { cause: error }),
    {
      ...(typeof code === "string" ? { code } : {}),
    },
  );
}
