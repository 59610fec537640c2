import type { Database } from "better-sqlite3";

/**
 * Which check a SQLite store runs on its file when it opens:
 *
 * - `quick`: `PRAGMA quick_check`, which reads every page and checks the
 *   structure of each b-tree, NOT NULL and CHECK constraints, but not that
 *   every index entry matches its row;
 * - `full`: `PRAGMA integrity_check`, which also matches every index against
 *   its table (so it finds an entry of the primary key that no longer leads
 *   to its record), at several times the cost;
 * - `off`: none.
 */
export type SqliteIntegrityCheck = "quick" | "full" | "off";

// The first few problems say enough; the rest would flood a log line.
const maxProblems = 5;

/**
 * Runs the integrity check `mode` names on an open connection and throws,
 * with what SQLite found and what to do, when the file is damaged. The
 * store then refuses to start rather than answer from records it cannot
 * trust: a damaged primary key can hide a completed record, and a claim
 * would then run its request again.
 */
export function checkSqliteIntegrity(db: Database, path: string, mode: SqliteIntegrityCheck): void {
  if (mode !== "quick" && mode !== "full" && mode !== "off") {
    throw new Error(`createSqliteStore: integrityCheck must be "quick", "full" or "off", got ${JSON.stringify(mode)}`);
  }
  if (mode === "off") {
    return;
  }
  const pragma = mode === "quick" ? "quick_check" : "integrity_check";
  let problems: string[];
  try {
    // One problem may span lines; the message stays one line.
    problems = (db.pragma(`${pragma}(${maxProblems})`) as Record<string, unknown>[]).map((row) =>
      String(Object.values(row)[0])
        .trim()
        .replace(/\s*\n\s*/g, "; "),
    );
  } catch (error) {
    // A page so damaged that the check itself cannot read it.
    problems = [error instanceof Error ? error.message : String(error)];
  }
  if (problems.length === 1 && problems[0] === "ok") {
    return;
  }
  throw new Error(
    `connect-idempotency: the SQLite file ${path} is damaged (PRAGMA ${pragma}: ${problems.join("; ")}); ` +
      "the store refuses to open it, since a damaged record could be replayed altered or its request run again. " +
      `Restore the file from a backup, or recover it (sqlite3 ${path} ".recover" | sqlite3 recovered.db) and then ` +
      "evict what fails its checksum (connect-idempotency keys evict --corrupt --db FILE); " +
      'integrityCheck: "off" opens it anyway',
    { cause: { pragma, problems } },
  );
}
