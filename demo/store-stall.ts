import { setTimeout as sleep } from "node:timers/promises";
import Database from "better-sqlite3";

/**
 * Stalls the SQLite store in the file at `path` for `ms` milliseconds: a
 * connection of its own takes the file's write lock (`BEGIN IMMEDIATE`) and
 * keeps it, as a long migration or a stuck batch job would. Every write of
 * every server process waits for its busy timeout and fails; reads go on
 * (WAL). Resolves once the lock is given back.
 */
export async function stallSqliteStore(path: string, ms: number): Promise<void> {
  const db = new Database(path, { fileMustExist: true, timeout: 5_000 });
  try {
    db.exec("BEGIN IMMEDIATE");
    try {
      await sleep(ms);
    } finally {
      db.exec("ROLLBACK");
    }
  } finally {
    db.close();
  }
}
