import type { Database } from "better-sqlite3";
import type {
  AtomicCompletion,
  AtomicIdempotencyStore,
  CompleteWithinResult,
  TransactionWork,
} from "../atomic-idempotency-store.js";
import type { Clock } from "../../time/clock.js";
import type { SqliteBatchExecutor } from "./sqlite-batch-executor.js";
import { quoteSqliteIdentifier, sqlitePhasesTable } from "./sqlite-schema.js";
import type { SqliteStatements } from "./sqlite-statements.js";

/** What the atomic operations of the SQLite store build on. */
export interface SqliteAtomicOperationsInit {
  /** The store's connection, handed to the application's work. */
  readonly db: Database;
  /** The store's executor: the work joins its transactions. */
  readonly executor: SqliteBatchExecutor;
  /** The records table, unquoted. */
  readonly table: string;
  /** The store's statements, for the completion inside the work's transaction. */
  readonly statements: SqliteStatements;
  /** The store's clock, which times recorded phases. */
  readonly clock: Clock;
}

/** The part of `AtomicIdempotencyStore` the SQLite store adds to its plain operations. */
export type SqliteAtomicOperations = Pick<
  AtomicIdempotencyStore<Database, "sync">,
  "transactionMode" | "transact" | "completeWithin" | "getPhase" | "recordPhase"
>;

/**
 * The atomic operations of the SQLite store. The application's work runs as
 * a job of the store's group-commit executor, inside its own savepoint of the
 * executor's transaction: its writes commit with the completion of the key or
 * roll back alone, and the promise resolves only once they are durable.
 * Work must be synchronous, as every better-sqlite3 transaction is.
 */
export function createSqliteAtomicOperations(init: SqliteAtomicOperationsInit): SqliteAtomicOperations {
  const { db, executor, table, statements, clock } = init;
  const records = quoteSqliteIdentifier(table);
  const phases = quoteSqliteIdentifier(sqlitePhasesTable(table));
  const keyMatch = "scope = ? AND method = ? AND key = ?";
  const getPhase = db.prepare<[scope: string, method: string, key: string, name: string], { result: Buffer }>(
    `SELECT result FROM ${phases} WHERE ${keyMatch} AND name = ?`,
  );
  // The owner check and the write are one statement: a claim taken over
  // between them is impossible.
  const recordPhase =
    db.prepare<RecordPhaseParams>(`INSERT INTO ${phases} (scope, method, key, name, result, recorded_at)
SELECT ?, ?, ?, ?, ?, ?
WHERE EXISTS (
  SELECT 1 FROM ${records}
  WHERE ${keyMatch} AND owner = ? AND takeovers = ? AND status = 'in_progress' AND interrupted = 0
)
ON CONFLICT (scope, method, key, name) DO UPDATE SET result = excluded.result, recorded_at = excluded.recorded_at`);

  function runSync<T>(work: TransactionWork<Database, T, "sync">): T {
    const result = work(db);
    if (typeof result === "object" && result !== null && typeof (result as { then?: unknown }).then === "function") {
      // Resolving later would run the rest of the work outside the transaction.
      throw new TypeError(
        "createSqliteStore: the store's transactions cannot span an await: the work must be synchronous",
      );
    }
    return result as T;
  }

  return {
    transactionMode: "sync",
    transact(work) {
      return executor.run(() => runSync(work));
    },
    completeWithin<T>(
      input: Parameters<SqliteAtomicOperations["completeWithin"]>[0],
      work: TransactionWork<Database, AtomicCompletion<T>, "sync">,
    ): Promise<CompleteWithinResult<T>> {
      const { key, owner, attempt, retentionMs, tombstoneMs } = input;
      return executor.run((): CompleteWithinResult<T> => {
        // A record this execution completed already is `not_owner` too: the
        // work must not run a second time.
        if (!statements.holds({ key, owner, attempt })) {
          return { kind: "not_owner" };
        }
        const { value, outcome, outcomeCode } = runSync(work);
        if (!statements.complete({ key, owner, attempt, outcome, retentionMs, tombstoneMs, outcomeCode })) {
          // The work itself deleted or changed the record: undo its writes.
          throw new Error("createSqliteStore: the claim changed inside its own completion transaction");
        }
        return { kind: "completed", value };
      });
    },
    getPhase(input) {
      const { scope, method, key } = input.key;
      return executor.run(
        () => {
          const row = getPhase.get(scope, method, key, input.name);
          return row === undefined
            ? undefined
            : new Uint8Array(row.result.buffer, row.result.byteOffset, row.result.byteLength);
        },
        { write: false, savepoint: false },
      );
    },
    recordPhase(input) {
      const { scope, method, key } = input.key;
      const { name, result, owner, attempt } = input;
      return executor.run(
        () =>
          recordPhase.run(scope, method, key, name, result, clock.now(), scope, method, key, owner, attempt - 1)
            .changes === 1,
        { write: true, savepoint: false },
      );
    },
  };
}

type KeyParams = [scope: string, method: string, key: string];

// The phase's row, then the claim that must hold.
type RecordPhaseParams = [
  ...KeyParams,
  name: string,
  result: Uint8Array,
  recordedAt: number,
  ...KeyParams,
  owner: string,
  takeovers: number,
];
