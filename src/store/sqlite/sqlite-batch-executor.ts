import type { Database } from "better-sqlite3";

/** How a job uses the database. */
export interface SqliteJobOptions {
  /**
   * Whether the job writes. A batch with a writing job starts with `BEGIN
   * IMMEDIATE` (taking the write lock up front, so that it never fails to
   * upgrade a read lock under contention); a batch of reads only with a
   * deferred `BEGIN`. Defaults to true.
   */
  readonly write?: boolean;
  /**
   * Whether the job runs in its own savepoint, so that its writes roll back
   * alone when it throws. Defaults to true. Only a job whose writes are one
   * statement may turn it off: SQLite undoes a failed statement by itself,
   * and the savepoint costs two more statements per job.
   */
  readonly savepoint?: boolean;
}

/**
 * Runs jobs against one better-sqlite3 connection with group commit: the
 * jobs submitted during one turn of the event loop run in one transaction at
 * the next `setImmediate`, so that a batch of concurrent requests pays for one
 * commit (and one fsync with `synchronous = FULL`) instead of one each.
 *
 * Jobs run one after another in submission order, so that jobs on the same
 * key behave as if sequential. Each job of a batch runs inside its own
 * savepoint (or is a single statement, which SQLite undoes by itself): a job
 * that throws is rolled back alone and its caller rejected, while the others
 * still commit. A promise resolves only after its batch committed; when the
 * commit fails (disk full, I/O error), or SQLite rolls back the whole
 * transaction by itself, every job whose work was lost is rejected with that
 * error, and jobs that had not run yet go into a new transaction. Nothing is
 * ever reported as done that is not in the database.
 *
 * With a `sync` (durability full), a batch's promises wait after the commit
 * for a sync that began after it, off the event loop; meanwhile the next
 * batch may already run. Read-only batches wait for one too, since what they
 * read may be a commit whose sync is still running.
 *
 * better-sqlite3 is synchronous: while another process holds the write lock,
 * `BEGIN IMMEDIATE` blocks the event loop for up to the busy timeout.
 */
export interface SqliteBatchExecutor {
  /**
   * Queues a job for the next batch. The job runs synchronously inside the
   * batch transaction and must not submit other jobs, start or end
   * transactions, or await anything; it returns its result or throws.
   */
  run<T>(job: (db: Database) => T, options?: SqliteJobOptions): Promise<T>;
  /** Transactions begun so far, for diagnostics: fewer than jobs means commits were shared. */
  readonly transactions: number;
  /** Jobs run so far, for diagnostics. */
  readonly jobs: number;
  /** Syncs asked for so far, for diagnostics: one per committed batch when there is a `sync`. */
  readonly syncs: number;
  /** Whether `close()` was called. */
  readonly closed: boolean;
  /**
   * Runs the jobs already queued, then closes the connection. Jobs submitted
   * afterwards reject. Idempotent.
   */
  close(): void;
}

/** Options of `createSqliteBatchExecutor`. */
export interface SqliteBatchExecutorOptions {
  /**
   * At most this many jobs share one transaction; more wait for the next
   * one, which keeps each transaction (and the write lock another process
   * may wait for) short. 1 turns group commit off. Defaults to 1024.
   */
  readonly maxBatchSize?: number;
  /**
   * Makes what was committed so far durable (see `SqliteWalSync`). When set,
   * a job's promise settles only once the sync after its commit resolved,
   * and rejects with the sync's error when it fails.
   */
  readonly sync?: () => Promise<void>;
}

interface Job {
  readonly run: (db: Database) => unknown;
  readonly write: boolean;
  readonly savepoint: boolean;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

type JobResult = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: unknown };

/** Creates the group-commit executor of a store on an open connection it then owns. */
export function createSqliteBatchExecutor(
  db: Database,
  options: SqliteBatchExecutorOptions = {},
): SqliteBatchExecutor {
  const maxBatchSize = options.maxBatchSize ?? 1024;
  if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1) {
    throw new Error(`maxBatchSize must be a positive integer, got ${maxBatchSize}`);
  }
  const beginWrite = db.prepare("BEGIN IMMEDIATE");
  const beginRead = db.prepare("BEGIN DEFERRED");
  const commit = db.prepare("COMMIT");
  const rollback = db.prepare("ROLLBACK");
  const savepoint = db.prepare("SAVEPOINT connect_idempotency_job");
  const releaseSavepoint = db.prepare("RELEASE connect_idempotency_job");
  const rollbackToSavepoint = db.prepare("ROLLBACK TO connect_idempotency_job");

  let queue: Job[] = [];
  let scheduled: NodeJS.Immediate | undefined;
  let transactions = 0;
  let jobs = 0;
  let syncs = 0;
  let closed = false;
  const sync = options.sync;

  function flush(): void {
    scheduled = undefined;
    runNextBatch();
    // A backlog beyond one batch waits for the next turn, so that I/O gets
    // its share of the event loop between transactions.
    if (queue.length > 0) scheduled = setImmediate(flush);
  }

  function runNextBatch(): void {
    const batch = queue.slice(0, maxBatchSize);
    const lost = runBatch(batch);
    // Jobs that never ran because SQLite dropped the transaction under them
    // go first into the next transaction.
    queue = lost.concat(queue.slice(batch.length));
  }

  /** Runs one transaction; returns the jobs that did not get to run. */
  function runBatch(batch: readonly Job[]): Job[] {
    try {
      (batch.some((job) => job.write) ? beginWrite : beginRead).run();
    } catch (error) {
      // Busy past the timeout, read-only file, I/O error: nobody ran.
      for (const job of batch) job.reject(error);
      return [];
    }
    transactions++;
    // Alone in its batch, a job needs no savepoint: the batch rolls back.
    const shared = batch.length > 1;
    const results: JobResult[] = [];
    for (let i = 0; i < batch.length; i++) {
      const job = batch[i]!;
      const isolate = shared && job.savepoint;
      jobs++;
      try {
        if (isolate) savepoint.run();
        const value = job.run(db);
        if (isolate) releaseSavepoint.run();
        results.push({ ok: true, value });
      } catch (error) {
        if (shared && db.inTransaction) {
          try {
            if (isolate) {
              rollbackToSavepoint.run();
              releaseSavepoint.run();
            }
            results.push({ ok: false, error });
            continue;
          } catch {
            // The savepoint is unusable: give up the transaction below.
          }
        }
        // Alone in its batch, or SQLite rolled back the whole transaction
        // (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM may), or the savepoint
        // failed: everything this transaction did so far is lost.
        abort();
        settleLost(batch.slice(0, i), results, error);
        job.reject(error);
        return batch.slice(i + 1);
      }
    }
    try {
      commit.run();
    } catch (error) {
      abort();
      settleLost(batch, results, error);
      return [];
    }
    if (sync === undefined) {
      settle(batch, results);
    } else {
      syncs++;
      sync().then(
        () => settle(batch, results),
        (error: unknown) => settleLost(batch, results, error),
      );
    }
    return [];
  }

  function settle(batch: readonly Job[], results: readonly JobResult[]): void {
    for (let i = 0; i < batch.length; i++) {
      const result = results[i]!;
      if (result.ok) batch[i]!.resolve(result.value);
      else batch[i]!.reject(result.error);
    }
  }

  /** Rejects jobs whose transaction was lost: those that succeeded with its cause, the others with their own error. */
  function settleLost(ran: readonly Job[], results: readonly JobResult[], cause: unknown): void {
    ran.forEach((job, i) => {
      const result = results[i]!;
      job.reject(result.ok ? cause : result.error);
    });
  }

  function abort(): void {
    if (db.inTransaction) {
      try {
        rollback.run();
      } catch {
        // SQLite could not roll back; the connection reports the cause on
        // the next statement, and no job of this batch is reported as done.
      }
    }
  }

  return {
    run<T>(job: (db: Database) => T, jobOptions: SqliteJobOptions = {}): Promise<T> {
      if (closed) {
        return Promise.reject(new Error("the SQLite idempotency store is closed"));
      }
      return new Promise<T>((resolve, reject) => {
        queue.push({
          run: job,
          write: jobOptions.write ?? true,
          savepoint: jobOptions.savepoint ?? true,
          resolve: resolve as (value: unknown) => void,
          reject,
        });
        scheduled ??= setImmediate(flush);
      });
    },
    get transactions() {
      return transactions;
    },
    get jobs() {
      return jobs;
    },
    get syncs() {
      return syncs;
    },
    get closed() {
      return closed;
    },
    close(): void {
      if (closed) return;
      closed = true;
      if (scheduled !== undefined) clearImmediate(scheduled);
      scheduled = undefined;
      while (queue.length > 0) runNextBatch();
      db.close();
    },
  };
}
