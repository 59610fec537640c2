import Database from "better-sqlite3";
import type { AtomicIdempotencyStore } from "../atomic-idempotency-store.js";
import { createRecordSweeper, type RecordSweeper, type SweepReport } from "../record-sweeper.js";
import { createSqliteAtomicOperations } from "./sqlite-atomic-operations.js";
import { createSqliteBatchExecutor, type SqliteBatchExecutor } from "./sqlite-batch-executor.js";
import { type SqliteCheckpointer, startSqliteCheckpointer } from "./sqlite-checkpointer.js";
import { checkSqliteIntegrity, type SqliteIntegrityCheck } from "./sqlite-integrity-check.js";
import { migrateSqliteSchema, quoteSqliteIdentifier, sqliteDefaultTable } from "./sqlite-schema.js";
import { createSqliteStatements, type SqliteStatements } from "./sqlite-statements.js";
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

/** Options of `createSqliteStore`. */
export interface SqliteStoreOptions {
  /** The database file, created when missing, or `":memory:"` for a private in-memory database. */
  readonly path: string;
  /** See `SqliteDurability`. Defaults to `"normal"`. */
  readonly durability?: SqliteDurability;
  /**
   * How long an operation waits for another process holding the write lock
   * before it rejects with `SQLITE_BUSY`. Defaults to 5000 ms.
   */
  readonly busyTimeoutMs?: number;
  /** Milliseconds between background sweeps; 0 disables them. Defaults to 60 000. */
  readonly sweepIntervalMs?: number;
  /** At most this many records per delete statement when sweeping. Defaults to 500. */
  readonly sweepBatchSize?: number;
  /**
   * The store's clock, in ms since the epoch: every claim, lease, completion,
   * expiry and sweep is timed by it. One machine shares one clock, so the
   * default `Date.now` suits; tests pass a clock they move by hand.
   */
  readonly clock?: () => number;
  /** Called after each background sweep; see `RecordSweeperOptions.onSweep`. */
  readonly onSweep?: (report: SweepReport) => void;
  /** The records table, a plain identifier. Defaults to `connect_idempotency_records`. */
  readonly table?: string;
  /**
   * Whether operations submitted in one event loop turn share a transaction.
   * Defaults to true; turning it off is meant for measuring what it saves.
   */
  readonly groupCommit?: boolean;
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
   * joins the store's transactions instead of interleaving with them.
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
 * Creates the default store: records in one SQLite table, in WAL mode so that
 * readers never block the writer and several processes can share one file
 * (each waits up to `busyTimeoutMs` for the write lock).
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
 * Opening runs the schema migrations, so it throws when the file cannot be
 * opened or migrated; operations reject with the SQLite error (`SQLITE_BUSY`,
 * `SQLITE_FULL`, `SQLITE_READONLY`, ...) when the database cannot answer.
 */
export function createSqliteStore(options: SqliteStoreOptions): SqliteStore {
  const table = options.table ?? sqliteDefaultTable;
  // Checked before the file is created.
  quoteSqliteIdentifier(table);
  const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
  const durability = options.durability ?? "normal";
  if (durability !== "normal" && durability !== "full") {
    throw new Error(`durability must be "normal" or "full", got ${JSON.stringify(durability)}`);
  }
  const clock = options.clock ?? Date.now;
  const db = new Database(options.path, { timeout: busyTimeoutMs });
  let statements: SqliteStatements;
  let executor: SqliteBatchExecutor;
  let sweeper: RecordSweeper;
  let walSync: SqliteWalSync | undefined;
  let checkpointer: SqliteCheckpointer | undefined;
  try {
    db.pragma("journal_mode = WAL");
    // Full durability syncs after the commit, off the event loop (walSync).
    db.pragma("synchronous = NORMAL");
    checkSqliteIntegrity(db, options.path, options.integrityCheck ?? "quick");
    migrateSqliteSchema(db, table);
    statements = createSqliteStatements(db, table, clock);
    // An in-memory database has no WAL: nothing to sync or checkpoint.
    const inFile = !db.memory;
    walSync = inFile && durability === "full" ? openSqliteWalSync(db.name) : undefined;
    executor = createSqliteBatchExecutor(db, {
      ...(options.groupCommit === false ? { maxBatchSize: 1 } : {}),
      ...(walSync === undefined ? {} : { sync: walSync.sync }),
    });
    checkpointer = inFile ? startSqliteCheckpointer(db, db.name) : undefined;
    sweeper = createRecordSweeper({
      deleteBatch: (limit) => executor.run(() => statements.sweep({ limit }), singleWrite),
      intervalMs: options.sweepIntervalMs ?? 60_000,
      batchSize: options.sweepBatchSize ?? 500,
      onSweep: options.onSweep,
    });
  } catch (error) {
    void walSync?.close();
    void checkpointer?.stop();
    db.close();
    throw error;
  }
  let closing: Promise<void> | undefined;

  return {
    path: options.path,
    table,
    database: db,
    executor,
    statements,
    // better-sqlite3 waits for another process's write lock synchronously,
    // holding the event loop (and every lease renewal) for up to this long.
    // A private in-memory database has no other process to wait for.
    blockingWaitMs: db.memory ? 0 : busyTimeoutMs,
    claim: (input) => executor.run(() => statements.claim(input), singleWrite),
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
        executor.close();
        await walSync?.close();
      })();
      return closing;
    },
  };
}
