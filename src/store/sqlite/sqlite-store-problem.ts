/**
 * Something wrong with a SQLite store's files that its operations alone
 * would not tell anyone about, reported to `SqliteStoreOptions.onProblem`:
 *
 * - `file_lost`: the database file, its `-wal` or its `-shm` was deleted or
 *   replaced while the store had it open. The store now refuses every
 *   operation (STORE_UNAVAILABLE for calls), because what it wrote would be
 *   invisible to other processes and gone after a restart. Reported once.
 * - `checkpoint_failed`: copying the write-ahead log back into the database
 *   file failed (the file became read-only or immutable, an I/O error), so
 *   the WAL grows with every write. Reported when it starts failing, then at
 *   most once a minute while it keeps failing.
 * - `wal_limit`: the WAL passed `maxWalBytes`; writes are refused until a
 *   checkpoint brings it back under (reads, and replays a read can answer,
 *   go on). Reported once each time it happens.
 */
export interface SqliteStoreProblem {
  /** What went wrong. */
  readonly kind: "file_lost" | "checkpoint_failed" | "wal_limit";
  /** The database file, as the store resolved it. */
  readonly path: string;
  /** One line for people, naming the cause and what to do. */
  readonly message: string;
  /** The underlying error, when there is one (for `checkpoint_failed`, SQLite's). */
  readonly error?: unknown;
}

/** The `code` of `process.emitWarning` for each kind, when nobody passed `onProblem`. */
const warningCodes: Readonly<Record<SqliteStoreProblem["kind"], string>> = {
  file_lost: "CONNECT_IDEMPOTENCY_SQLITE_FILE_LOST",
  checkpoint_failed: "CONNECT_IDEMPOTENCY_SQLITE_CHECKPOINT_FAILED",
  wal_limit: "CONNECT_IDEMPOTENCY_SQLITE_WAL_LIMIT",
};

/**
 * Returns the reporter of a store's problems: `onProblem` when given (a
 * listener that throws is ignored), else `process.emitWarning`.
 */
export function createSqliteProblemReporter(
  onProblem: ((problem: SqliteStoreProblem) => void) | undefined,
): (problem: SqliteStoreProblem) => void {
  if (onProblem === undefined) {
    return (problem) => process.emitWarning(problem.message, { code: warningCodes[problem.kind] });
  }
  return (problem) => {
    try {
      onProblem(problem);
    } catch {
      // A failing listener must not fail the store's operations.
    }
  };
}
