import type { Database } from "better-sqlite3";

/** How a job uses the database. */
export interface SqliteJobOptions<T = unknown> {
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
  /**
   * For a writing job: answers it from a read alone while it cannot have the
   * write lock (another connection holds it, or the executor's `admit`
   * refuses writes), such as a claim of a key whose completed record a read
   * finds. It runs in a read transaction, must only read, and returns
   * undefined when only the write can answer; the job then waits for the
   * lock as any other. Tried once per job.
   */
  readonly readFallback?: (db: Database) => T | undefined;
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
 * better-sqlite3 is synchronous, so waiting for another process's write
 * lock inside SQLite (its busy timeout) would hold the event loop. Instead,
 * the connection's own busy timeout stays tiny, and a batch that finds the
 * lock taken (`SQLITE_BUSY`) waits asynchronously: its writing jobs go back
 * to the head of the queue and try again after pauses of 1 ms, doubling up
 * to 25 ms, until each has waited `busyTimeoutMs` since it was submitted.
 * Meanwhile reads, and writing jobs that a read can answer
 * (`readFallback`), run at once in read transactions, which WAL mode never
 * blocks; later writes queue behind the waiting ones, in order.
 */
export interface SqliteBatchExecutor {
  /**
   * Queues a job for the next batch. The job runs synchronously inside the
   * batch transaction and must not submit other jobs, start or end
   * transactions, or await anything; it returns its result or throws.
   */
  run<T>(job: (db: Database) => T, options?: SqliteJobOptions<T>): Promise<T>;
  /** Transactions begun so far, read transactions that answered waiting jobs included, for diagnostics. */
  readonly transactions: number;
  /** Jobs run so far, for diagnostics. */
  readonly jobs: number;
  /** Syncs asked for so far, for diagnostics: one per committed batch when there is a `sync`. */
  readonly syncs: number;
  /** Times a batch found the write lock taken and waited, for diagnostics. */
  readonly busyWaits: number;
  /** Whether `close()` was called. */
  readonly closed: boolean;
  /**
   * Runs the jobs already queued (those waiting for another process's write
   * lock wait out their `busyTimeoutMs`), then closes the connection and
   * resolves. Jobs submitted afterwards reject. Idempotent.
   */
  close(): Promise<void>;
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
  /**
   * How long a job waits, in all, for a write lock another connection holds:
   * `SQLITE_BUSY` is retried after asynchronous pauses until then. Defaults
   * to 0: a batch that finds the lock taken fails at once (beyond the
   * connection's own busy timeout).
   */
  readonly busyTimeoutMs?: number;
  /**
   * Called before each transaction with whether it writes; returns the
   * error to refuse it with, or undefined. A refused writing batch still
   * runs its reads and read fallbacks, with `admit(false)` asked first.
   */
  readonly admit?: (write: boolean) => Error | undefined;
  /**
   * The error a job rejects with once it waited `busyTimeoutMs` for the
   * write lock: `cause` is SQLite's `SQLITE_BUSY`, `waitedMs` how long the
   * longest-waiting such job waited. Called once per give-up, for all the jobs
   * that give up then. Defaults to the SQLite error itself.
   */
  readonly busyError?: (cause: unknown, waitedMs: number) => unknown;
}

interface Job {
  readonly run: (db: Database) => unknown;
  readonly write: boolean;
  readonly savepoint: boolean;
  readonly fallback: ((db: Database) => unknown) | undefined;
  /** Whether `fallback` ran (or there is none): it is tried once. */
  fallbackTried: boolean;
  /** `performance.now()` at submission: the start of its `busyTimeoutMs`. */
  readonly queuedAt: number;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

type JobResult = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: unknown };

/** The first pause after `SQLITE_BUSY`; each next one doubles, up to `maxLockPauseMs`. */
const firstLockPauseMs = 1;
/** The longest pause between two tries for the write lock. */
const maxLockPauseMs = 25;

/** Creates the group-commit executor of a store on an open connection it then owns. */
export function createSqliteBatchExecutor(db: Database, options: SqliteBatchExecutorOptions = {}): SqliteBatchExecutor {
  const maxBatchSize = options.maxBatchSize ?? 1024;
  if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1) {
    throw new Error(`maxBatchSize must be a positive integer, got ${maxBatchSize}`);
  }
  const busyTimeoutMs = options.busyTimeoutMs ?? 0;
  if (!(busyTimeoutMs >= 0)) {
    throw new Error(`busyTimeoutMs must be zero or a positive number, got ${busyTimeoutMs}`);
  }
  const { sync, admit } = options;
  const busyError = options.busyError ?? ((cause: unknown) => cause);
  const beginWrite = db.prepare("BEGIN IMMEDIATE");
  const beginRead = db.prepare("BEGIN DEFERRED");
  const commit = db.prepare("COMMIT");
  const rollback = db.prepare("ROLLBACK");
  const savepoint = db.prepare("SAVEPOINT connect_idempotency_job");
  const releaseSavepoint = db.prepare("RELEASE connect_idempotency_job");
  const rollbackToSavepoint = db.prepare("ROLLBACK TO connect_idempotency_job");

  let queue: Job[] = [];
  let scheduled: NodeJS.Immediate | undefined;
  /** Set while writing jobs wait for another connection's write lock: the next try. */
  let lockRetry: NodeJS.Timeout | undefined;
  let lockPauseMs = firstLockPauseMs;
  let transactions = 0;
  let jobs = 0;
  let syncs = 0;
  let busyWaits = 0;
  /** The latest SQLITE_BUSY, the cause of jobs that give up waiting. */
  let lastBusy: unknown;
  let closed = false;
  let closing: Promise<void> | undefined;
  let finishClose: (() => void) | undefined;

  function flush(): void {
    scheduled = undefined;
    if (lockRetry === undefined) {
      runNextBatch();
    } else {
      // Writes wait for the lock: answer now what a read can.
      queue = readPass(queue);
    }
    // A backlog beyond one batch waits for the next turn, so that I/O gets
    // its share of the event loop between transactions.
    if (queue.length > 0 && lockRetry === undefined) scheduled = setImmediate(flush);
    if (closed) drainForClose();
  }

  function runNextBatch(): void {
    const batch = queue.splice(0, maxBatchSize);
    if (!batch.some((job) => job.write)) {
      // Only reads: one that meets SQLITE_BUSY waits as a write would.
      const left = readPass(batch);
      if (left.length > 0) waitForLock(left, lastBusy);
      return;
    }
    const refusal = admit?.(true);
    if (refusal !== undefined) {
      // Writes refused; what a read can answer still gets its answer (a
      // lost file refuses reads too, in readPass).
      for (const job of readPass(batch)) job.reject(refusal);
      return;
    }
    try {
      beginWrite.run();
    } catch (error) {
      if (isSqliteBusy(error) && busyTimeoutMs > 0) {
        waitForLock(batch, error);
      } else {
        // Busy without a budget, read-only file, I/O error: nobody ran.
        for (const job of batch) job.reject(error);
      }
      return;
    }
    lockPauseMs = firstLockPauseMs;
    // Jobs that never ran because SQLite dropped the transaction under them
    // go first into the next transaction.
    queue = runWriteBatch(batch).concat(queue);
  }

  /** Runs one write transaction, begun; returns the jobs that did not get to run. */
  function runWriteBatch(batch: readonly Job[]): Job[] {
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
    settleAfterSync(batch, results);
    return [];
  }

  /**
   * Runs, in one read transaction, the reads among `pending` and the read
   * fallbacks not tried yet; settles those that got an answer and returns
   * the others in their order. A read that meets SQLITE_BUSY stays pending.
   */
  function readPass(pending: readonly Job[]): Job[] {
    if (!pending.some((job) => !job.write || !job.fallbackTried)) {
      return [...pending];
    }
    const refusal = admit?.(false);
    if (refusal !== undefined) {
      for (const job of pending) job.reject(refusal);
      return [];
    }
    try {
      beginRead.run();
    } catch (error) {
      // A deferred BEGIN touches nothing; this is a misused connection.
      for (const job of pending) job.reject(error);
      return [];
    }
    transactions++;
    const answered: Job[] = [];
    const results: JobResult[] = [];
    const left: Job[] = [];
    for (const job of pending) {
      if (job.write && job.fallbackTried) {
        left.push(job);
        continue;
      }
      jobs++;
      try {
        let value: unknown;
        if (job.write) {
          job.fallbackTried = true;
          value = job.fallback!(db);
          if (value === undefined) {
            left.push(job);
            continue;
          }
        } else {
          value = job.run(db);
        }
        answered.push(job);
        results.push({ ok: true, value });
      } catch (error) {
        if (isSqliteBusy(error) && busyTimeoutMs > 0) {
          lastBusy = error;
          left.push(job);
          continue;
        }
        answered.push(job);
        results.push({ ok: false, error });
      }
    }
    try {
      commit.run();
    } catch (error) {
      abort();
      settleLost(answered, results, error);
      return left;
    }
    settleAfterSync(answered, results);
    return left;
  }

  /**
   * Puts jobs that found the write lock taken back at the head of the queue
   * and tries again after a pause; rejects those that waited
   * `busyTimeoutMs`. Reads and read fallbacks among them run now.
   */
  function waitForLock(batch: readonly Job[], cause: unknown): void {
    busyWaits++;
    lastBusy = cause;
    const left = readPass(batch);
    const now = performance.now();
    const waiting: Job[] = [];
    const expired: Job[] = [];
    for (const job of left) {
      (now - job.queuedAt >= busyTimeoutMs ? expired : waiting).push(job);
    }
    if (expired.length > 0) {
      const error = busyError(lastBusy, now - expired[0]!.queuedAt);
      for (const job of expired) job.reject(error);
    }
    // Reads queued behind this batch need not wait for its retry either.
    queue = readPass(waiting.concat(queue));
    if (waiting.length === 0 || queue.length === 0) {
      return;
    }
    let earliestDeadline = Number.POSITIVE_INFINITY;
    for (const job of queue) earliestDeadline = Math.min(earliestDeadline, job.queuedAt + busyTimeoutMs);
    const pauseMs = Math.max(0, Math.min(lockPauseMs, earliestDeadline - now));
    lockPauseMs = Math.min(lockPauseMs * 2, maxLockPauseMs);
    if (scheduled !== undefined) {
      clearImmediate(scheduled);
      scheduled = undefined;
    }
    lockRetry = setTimeout(() => {
      lockRetry = undefined;
      flush();
    }, pauseMs);
  }

  function settleAfterSync(batch: readonly Job[], results: readonly JobResult[]): void {
    if (batch.length === 0) {
      return;
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

  /** Runs what is queued while nothing waits for the lock; closes the connection once nothing is left. */
  function drainForClose(): void {
    while (queue.length > 0 && lockRetry === undefined) runNextBatch();
    if (queue.length > 0 || finishClose === undefined) {
      // Waiting for the lock: the retry's flush comes back here.
      return;
    }
    if (scheduled !== undefined) clearImmediate(scheduled);
    scheduled = undefined;
    if (lockRetry !== undefined) clearTimeout(lockRetry);
    lockRetry = undefined;
    const done = finishClose;
    finishClose = undefined;
    db.close();
    done();
  }

  return {
    run<T>(job: (db: Database) => T, jobOptions: SqliteJobOptions<T> = {}): Promise<T> {
      if (closed) {
        return Promise.reject(new Error("createSqliteStore: the store is closed"));
      }
      return new Promise<T>((resolve, reject) => {
        const write = jobOptions.write ?? true;
        const fallback = write ? jobOptions.readFallback : undefined;
        queue.push({
          run: job,
          write,
          savepoint: jobOptions.savepoint ?? true,
          fallback,
          fallbackTried: fallback === undefined,
          queuedAt: performance.now(),
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
    get busyWaits() {
      return busyWaits;
    },
    get closed() {
      return closed;
    },
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        closed = true;
        finishClose = resolve;
        drainForClose();
      });
      return closing;
    },
  };
}

/** Whether SQLite refused because another connection holds a lock (`SQLITE_BUSY` and its extended codes). */
export function isSqliteBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && (code === "SQLITE_BUSY" || code.startsWith("SQLITE_BUSY_"));
}
