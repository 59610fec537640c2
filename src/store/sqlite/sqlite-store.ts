import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type Database from "better-sqlite3";
import type { Clock } from "../../time/clock.js";
import type { AtomicIdempotencyStore } from "../atomic-idempotency-store.js";
import { createRecordSweeper, type RecordSweeper, type SweepReport } from "../record-sweeper.js";
import { createSqliteAtomicOperations } from "./sqlite-atomic-operations.js";
import { createSqliteBatchExecutor, type SqliteBatchExecutor } from "./sqlite-batch-executor.js";
import { type SqliteCheckpointer, startSqliteCheckpointer } from "./sqlite-checkpointer.js";
import { claimFromRead } from "./sqlite-claim-from-read.js";
import { createSqliteFileGuard, formatWalBytes } from "./sqlite-file-guard.js";
import { checkSqliteIntegrity, type SqliteIntegrityCheck } from "./sqlite-integrity-check.js";
import { describeSqliteLockHolder } from "./sqlite-lock-holder.js";
import { openSqliteDatabase } from "./sqlite-open-database.js";
import { migrateSqliteSchema } from "./sqlite-schema.js";
import { createSqliteStatements, type SqliteStatements } from "./sqlite-statements.js";
import { resolveSqliteStoreOptions } from "./sqlite-store-options.js";
import { createSqliteProblemReporter, type SqliteStoreProblem } from "./sqlite-store-problem.js";
import { openSqliteWalSync, type SqliteWalSync } from "./sqlite-wal-sync.js";

/**
 * How hard a commit tries to survive a crash.
 *
 * - `normal` (`PRAGMA synchronous = NORMAL`): a commit survives the process
 *   crashing; a power loss or kernel crash may lose the last commits before
 *   the next WAL checkpoint. Lost records mean a retry runs the handler again.
 * - `full`: every commit is fsynced before anything that depends on it
 *   proceeds, so a record an operation reported survives power loss. Group
 *   commit shares one fsync among all operations of an event loop turn, and
 *   the fsync runs in libuv's thread pool rather than on the event loop (see
 *   `SqliteWalSync`).
 *
 * With either, WAL checkpoints run in a worker thread; the event loop only
 * finishes one past a backstop size, so that the WAL starts over (see
 * `startSqliteCheckpointer`).
 */
export type SqliteDurability = "normal" | "full";

/** Options of `createSqliteStore`. Unknown names throw, naming the known ones. */
export interface SqliteStoreOptions {
  /**
   * The database file, created when missing (its directory must exist), or
   * `":memory:"` for a private in-memory database that forgets every request
   * ID on restart. Required: undefined or `""` throws rather than open a
   * private database.
   */
  readonly path: string;
  /** See `SqliteDurability`. Defaults to `"normal"`. */
  readonly durability?: SqliteDurability;
  /**
   * How long an operation waits for another process holding the write lock
   * before it rejects with `SQLITE_BUSY`. The wait is asynchronous: the
   * event loop, reads and replays go on meanwhile (see
   * `SqliteBatchExecutor`). Opening the store waits synchronously, as long.
   * Defaults to 5000 ms.
   */
  readonly busyTimeoutMs?: number;
  /** Milliseconds between background sweeps; 0 disables them. Defaults to 60 000. */
  readonly sweepIntervalMs?: number;
  /** At most this many records per delete statement when sweeping. Defaults to 500. */
  readonly sweepBatchSize?: number;
  /**
   * The store's clock, in ms since the epoch: every claim, lease, completion,
   * expiry and sweep is timed by it. One machine shares one clock, so the
   * default `Date` suits; tests pass a clock they move by hand.
   */
  readonly clock?: Clock;
  /** Called after each background sweep; see `RecordSweeperOptions.onSweep`. */
  readonly onSweep?: (report: SweepReport) => void;
  /**
   * Called when the store's files go wrong behind its back: the database
   * file deleted or replaced, checkpoints failing, the WAL past
   * `maxWalBytes` (see `SqliteStoreProblem`). Defaults to
   * `process.emitWarning`. The operations that fail because of it reject
   * with an error of the same message.
   */
  readonly onProblem?: (problem: SqliteStoreProblem) => void;
  /** The records table, a plain identifier. Defaults to `connect_idempotency_records`. */
  readonly table?: string;
  /**
   * Whether operations submitted in one event loop turn share a transaction.
   * Defaults to true; turning it off is meant for measuring what it saves.
   */
  readonly groupCommit?: boolean;
  /**
   * Writes are refused (reads and replays go on) while the write-ahead log
   * is larger than this many bytes, which only happens when checkpoints
   * cannot copy it back into the database file: better an error than a full
   * disk. `Infinity` turns the limit off. Defaults to 1 GiB.
   */
  readonly maxWalBytes?: number;
  /**
   * The check of the file at open (see `SqliteIntegrityCheck`); a damaged
   * file makes `createSqliteStore` throw. Defaults to `"quick"`, measured
   * here at 7-8 ms for a 5 MB file of 10,000 records and 190-290 ms for a
   * 50 MB file of 100,000 (about 3 ms per 1,000 records, paid by every
   * process that opens the file): cheap next to a server's start. It found
   * 16 random bytes written into each of 20 pages every time (11 of 11), and
   * into a single page 5 times of 12. `"full"` costs about twice as much
   * (15-40 ms and 270-990 ms) and also finds an entry of the primary key's
   * index that no longer leads to its record, which quick misses (1 of
   * those 12): such a record is not found, so its request runs again.
   * Records damaged inside, which neither check sees, fail their checksum
   * (`StoreCorruptError`). Turn it `"off"` for files of millions of records.
   */
  readonly integrityCheck?: SqliteIntegrityCheck;
}

export type { SqliteStoreProblem } from "./sqlite-store-problem.js";

/**
 * The SQLite store: an `IdempotencyStore` whose atomic effects hand the
 * application this file's connection (`AtomicIdempotencyStore`), plus what
 * code in the same folder (the admin CLI) needs to work on the same database.
 */
export interface SqliteStore extends AtomicIdempotencyStore<Database.Database, "sync"> {
  /** The database file, or `":memory:"`. */
  readonly path: string;
  /** The records table, unquoted. */
  readonly table: string;
  /**
   * The connection. Run anything that writes through `executor`, so that it
   * joins the store's transactions instead of interleaving with them. Your
   * own tables in this file: see docs/atomic-effects.md.
   */
  readonly database: Database.Database;
  /** The group-commit executor every operation goes through; also counts transactions. */
  readonly executor: SqliteBatchExecutor;
  /** The store's operations as synchronous functions, to call inside `executor` jobs. */
  readonly statements: SqliteStatements;
}

// Each operation writes with one statement (a claim's or a completion's read
// comes after its only write, and only when that wrote nothing), so it needs
// no savepoint.
const singleWrite = { write: true, savepoint: false } as const;

/**
 * How long the connection itself waits for another connection's lock, inside
 * SQLite and so on the event loop, before the executor takes over and waits
 * asynchronously (see `SqliteBatchExecutor`): the longest the store blocks
 * the process on a lock (`blockingWaitMs`).
 */
const lockTryMs = 2;

/**
 * Creates the default store: records in one SQLite table, in WAL mode so that
 * readers never block the writer and several processes can share one file
 * (each waits up to `busyTimeoutMs` for the write lock, asynchronously).
 *
 * A claim is a single `INSERT ... ON CONFLICT DO UPDATE ... WHERE ...
 * RETURNING` against the primary key `(scope, method, key)`: it inserts, or
 * replaces a record that counts as absent (expired, with no live lease) or a
 * claim with the same fingerprint that was interrupted or whose lease and
 * grace period ended (a takeover), or returns nothing, in which case the
 * record that holds the key is read in the same transaction. Expiry and lease
 * ends are inclusive: a record whose `expiresAt` equals now is expired, a
 * lease whose `leaseUntil` equals now has ended. Completion, interruption,
 * release and renewal only touch a running record whose owner token and
 * attempt match. Every time comes from `clock`, read when the operation runs.
 *
 * Operations submitted during one event loop turn share one transaction and
 * one commit (group commit, see `SqliteBatchExecutor`), which is what makes
 * `durability: "full"` affordable; each promise resolves once its
 * transaction committed.
 *
 * While another process holds the write lock, writes wait for it without
 * blocking the event loop, reads go on, and a claim that a read can answer
 * (the key's record is completed, or running under a live lease: a replay or
 * a duplicate) is answered from the read (`claimFromRead`).
 *
 * The store watches its files (`createSqliteFileGuard`): when the database
 * file or its `-wal` or `-shm` is deleted or replaced under it, every
 * operation rejects from then on, and past `maxWalBytes` of write-ahead log
 * writes do; `onProblem` hears of both, and of failing checkpoints.
 *
 * Opening checks the options, opens the file for writing (a read-only or
 * immutable file, a directory or a missing directory throws with a message
 * that says so) and runs the schema migrations; operations reject with the
 * SQLite error (`SQLITE_BUSY` once `busyTimeoutMs` passed, `SQLITE_FULL`,
 * ...) when the database cannot answer.
 */
export function createSqliteStore(options: SqliteStoreOptions): SqliteStore {
  const settings = resolveSqliteStoreOptions(options);
  const { table, busyTimeoutMs, durability, clock } = settings;
  const report = createSqliteProblemReporter(settings.onProblem);
  const db = openSqliteDatabase(settings.path, busyTimeoutMs);
  // An in-memory database has no files, no WAL and no other process.
  const inFile = !db.memory;
  const path = inFile ? resolve(settings.path) : settings.path;
  let statements: SqliteStatements;
  let executor: SqliteBatchExecutor;
  let sweeper: RecordSweeper;
  let walSync: SqliteWalSync | undefined;
  let checkpointer: SqliteCheckpointer | undefined;
  try {
    // Full durability syncs after the commit, off the event loop (walSync).
    db.pragma("synchronous = NORMAL");
    checkSqliteIntegrity(db, settings.path, settings.integrityCheck);
    migrateSqliteSchema(db, table);
    // From now on the executor waits for locks, off the event loop.
    db.pragma(`busy_timeout = ${inFile ? lockTryMs : 0}`);
    statements = createSqliteStatements(db, table, clock);
    walSync = inFile && durability === "full" ? openSqliteWalSync(db.name) : undefined;
    checkpointer = inFile
      ? startSqliteCheckpointer(db, db.name, {
          onFailure: (error, failures) =>
            // A deleted database file is the guard's to report (file_lost);
            // checkpoints of it fail with DBMOVED or, racing the unlink, IOERR.
            (error as { code?: string }).code !== "SQLITE_READONLY_DBMOVED" &&
            existsSync(path) &&
            report({
              kind: "checkpoint_failed",
              path,
              message:
                `connect-idempotency: checkpoints of the SQLite file ${path} fail (${failures} in a row): ` +
                `${(error as { code?: string }).code ?? "error"}: ${error.message}; the write-ahead log grows with every write ` +
                `until they succeed, and writes stop once it passes maxWalBytes (${formatWalBytes(settings.maxWalBytes)}). ` +
                "Is the database file read-only or immutable, or the disk failing?",
              error,
            }),
        })
      : undefined;
    const guard = inFile
      ? createSqliteFileGuard({
          db,
          path,
          maxWalBytes: settings.maxWalBytes,
          report,
          checkpointError: () => checkpointer?.failure,
        })
      : undefined;
    executor = createSqliteBatchExecutor(db, {
      ...(settings.groupCommit ? {} : { maxBatchSize: 1 }),
      ...(walSync === undefined ? {} : { sync: walSync.sync }),
      busyTimeoutMs,
      ...(guard === undefined ? {} : { admit: guard.admit }),
      busyError: (cause, waitedMs) =>
        Object.assign(
          new Error(
            `createSqliteStore: the SQLite file ${path} is locked: another connection has held its write lock for ` +
              `${Math.round(waitedMs)} ms, longer than busyTimeoutMs (${busyTimeoutMs} ms)${describeSqliteLockHolder(path)}`,
            { cause },
          ),
          { code: "SQLITE_BUSY" },
        ),
    });
    sweeper = createRecordSweeper({
      deleteBatch: (limit) => executor.run(() => statements.sweep({ limit }), singleWrite),
      tombstoneBatch: (limit) => executor.run(() => statements.tombstone({ limit }), singleWrite),
      intervalMs: settings.sweepIntervalMs,
      batchSize: settings.sweepBatchSize,
      onSweep: settings.onSweep,
    });
  } catch (error) {
    void walSync?.close();
    void checkpointer?.stop();
    db.close();
    throw error;
  }
  let closing: Promise<void> | undefined;

  return {
    path: settings.path,
    table,
    database: db,
    executor,
    statements,
    // Only the connection's own busy timeout waits on the event loop; the
    // executor waits for the rest of busyTimeoutMs asynchronously.
    blockingWaitMs: inFile ? lockTryMs : 0,
    // The options written out, the fallback a method: a spread into a
    // literal and an arrow function in a property (which tsx's keepNames
    // renames by defineProperty) each cost more than the rest of the
    // submission, once per claim (measured: 2.2 us against 35 ns).
    claim: (input) =>
      executor.run(() => statements.claim(input), {
        write: true,
        savepoint: false,
        readFallback() {
          return claimFromRead(statements, input);
        },
      }),
    complete: (input) => executor.run(() => statements.complete(input), singleWrite),
    interrupt: (input) => executor.run(() => statements.interrupt(input), singleWrite),
    release: (input) => executor.run(() => statements.release(input), singleWrite),
    renew: (input) => executor.run(() => statements.renew(input), singleWrite),
    get: (key) => executor.run(() => statements.get(key), { write: false, savepoint: false }),
    sweep: (input) => sweeper.sweep(input),
    ...createSqliteAtomicOperations({ db, executor, table, statements, clock }),
    close() {
      closing ??= (async () => {
        await sweeper.stop();
        // The checkpointer lets go of the file first, so that closing the
        // store's connection, the last one, checkpoints and removes the WAL.
        await checkpointer?.stop();
        await executor.close();
        await walSync?.close();
      })();
      return closing;
    },
  };
}
