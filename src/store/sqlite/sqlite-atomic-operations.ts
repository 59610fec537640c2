import type { Database } from "better-sqlite3";
import type {
  AtomicCompletion,
  AtomicIdempotencyStore,
  CompleteWithinResult,
  TransactionWork,
} from "../atomic-idempotency-store.js";
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
  const { db, executor, table } = init;
  const records = quoteSqliteIdentifier(table);
  const phases = quoteSqliteIdentifier(sqlitePhasesTable(table));
  const keyMatch = "scope = @scope AND method = @method AND key = @key";
  const holdsClaim = db.prepare<{ scope: string; method: string; key: string; owner: string }, { held: number }>(
    `SELECT 1 AS held FROM ${records} WHERE ${keyMatch} AND owner = @owner AND status = 'in_progress'`,
  );
  const getPhase = db.prepare<{ scope: string; method: string; key: string; name: string }, { result: Buffer }>(
    `SELECT result FROM ${phases} WHERE ${keyMatch} AND name = @name`,
  );
  // The owner check and the write are one statement: a claim taken over
  // between them is impossible.
  const recordPhase = db.prepare<{
    scope: string;
    method: string;
    key: string;
    owner: string;
    name: string;
    result: Uint8Array;
    now: number;
  }>(`INSERT INTO ${phases} (scope, method, key, name, result, recorded_at)
SELECT @scope, @method, @key, @name, @result, @now
WHERE EXISTS (SELECT 1 FROM ${records} WHERE ${keyMatch} AND owner = @owner AND status = 'in_progress')
ON CONFLICT (scope, method, key, name) DO UPDATE SET result = excluded.result, recorded_at = excluded.recorded_at`);

  function runSync<T>(work: TransactionWork<Database, T, "sync">): T {
    const result = work(db);
    if (typeof result === "object" && result !== null && typeof (result as { then?: unknown }).then === "function") {
      // Resolving later would run the rest of the work outside the transaction.
      throw new TypeError("the SQLite store's transactions cannot span an await: the work must be synchronous");
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
      const owner = { scope: input.key.scope, method: input.key.method, key: input.key.key, owner: input.owner };
      return executor.run((): CompleteWithinResult<T> => {
        if (holdsClaim.get(owner) === undefined) {
          return { kind: "not_owner" };
        }
        const { value, outcome } = runSync(work);
        if (!init.statements.complete({ key: input.key, owner: input.owner, outcome, now: input.now, expiresAt: input.expiresAt })) {
          // The work itself deleted or changed the record: undo its writes.
          throw new Error("the claim changed inside its own completion transaction");
        }
        return { kind: "completed", value };
      });
    },
    getPhase(input) {
      const params = { scope: input.key.scope, method: input.key.method, key: input.key.key, name: input.name };
      return executor.run(() => {
        const row = getPhase.get(params);
        return row === undefined ? undefined : new Uint8Array(row.result.buffer, row.result.byteOffset, row.result.byteLength);
      }, { write: false, savepoint: false });
    },
    recordPhase(input) {
      const params = {
        scope: input.key.scope,
        method: input.key.method,
        key: input.key.key,
        owner: input.owner,
        name: input.name,
        result: input.result,
        now: input.now,
      };
      return executor.run(() => recordPhase.run(params).changes === 1, { write: true, savepoint: false });
    },
  };
}
