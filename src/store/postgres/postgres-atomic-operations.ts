import type { Pool, PoolClient } from "pg";
import type {
  AtomicCompletion,
  AtomicIdempotencyStore,
  CompleteWithinInput,
  CompleteWithinResult,
  TransactionWork,
} from "../atomic-idempotency-store.js";
import type { RecordKey } from "../idempotency-store.js";
import { type PostgresStatements, postgresClockMs, postgresQuery, toPostgresText } from "./postgres-statements.js";

/** What the atomic operations of the PostgreSQL store build on. */
export interface PostgresAtomicOperationsInit {
  /** The store's pool; throws once the store is closed. */
  readonly pool: () => Pool;
  /** The records table, quoted and qualified. */
  readonly records: string;
  /** The phases table, quoted and qualified. */
  readonly phases: string;
  /** The store's statements, for the completion inside the transaction. */
  readonly statements: PostgresStatements;
  /** Whether statements are named, as the store's are (`preparedStatements`). */
  readonly prepared: boolean;
}

/** The part of `AtomicIdempotencyStore` the PostgreSQL store adds to its plain operations. */
export type PostgresAtomicOperations = Pick<
  AtomicIdempotencyStore<PoolClient, "async">,
  "transactionMode" | "transact" | "completeWithin" | "getPhase" | "recordPhase"
>;

// Stored as the store's own statements store them.
function keyValues(key: RecordKey): string[] {
  return [toPostgresText(key.scope), toPostgresText(key.method), toPostgresText(key.key)];
}

/**
 * The atomic operations of the PostgreSQL store. The application's work gets
 * a client of the store's pool inside `BEGIN ... COMMIT` and may await. For
 * `completeWithin`, the claim's row is locked (`FOR UPDATE`) before the work
 * runs, so that no takeover can slip in between the owner check and the
 * completion: a claim of the same key waits for the transaction.
 */
export function createPostgresAtomicOperations(init: PostgresAtomicOperationsInit): PostgresAtomicOperations {
  const { records, phases, statements } = init;
  const keyMatch = "scope = $1 AND method = $2 AND key = $3";
  const running = "owner = $4 AND takeovers = $5 AND status = 'in_progress' AND NOT interrupted";
  const lockClaim = postgresQuery(
    `SELECT 1 FROM ${records} WHERE ${keyMatch} AND ${running} FOR UPDATE`,
    init.prepared,
  );
  const getPhase = postgresQuery(`SELECT result FROM ${phases} WHERE ${keyMatch} AND name = $4`, init.prepared);
  // Owner check and write in one statement; FOR SHARE waits for a takeover
  // in flight and then sees its new owner, so a lost claim records nothing.
  const recordPhase = postgresQuery(
    `INSERT INTO ${phases} (scope, method, key, name, result, recorded_at)
SELECT $1::text, $2::text, $3::text, $6::text, $7::bytea, ${postgresClockMs}
WHERE EXISTS (SELECT 1 FROM ${records} WHERE ${keyMatch} AND ${running} FOR SHARE)
ON CONFLICT (scope, method, key, name) DO UPDATE SET result = EXCLUDED.result, recorded_at = EXCLUDED.recorded_at`,
    init.prepared,
  );

  /** Runs `body` in one transaction on one client; rolls back when it throws. */
  async function inTransaction<T>(body: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await init.pool().connect();
    try {
      await client.query("BEGIN");
      const result = await body(client);
      const commit = await client.query("COMMIT");
      // COMMIT of a transaction that failed inside the work answers ROLLBACK.
      if (commit.command !== "COMMIT") {
        throw new Error("createPostgresStore: the transaction was rolled back: a statement of the work failed");
      }
      client.release();
      return result;
    } catch (error) {
      // ROLLBACK outside a transaction only warns. When it fails, the
      // connection is gone: drop it from the pool.
      await client.query("ROLLBACK").then(
        () => client.release(),
        (rollbackError: unknown) => client.release(rollbackError instanceof Error ? rollbackError : true),
      );
      throw error;
    }
  }

  return {
    transactionMode: "async",
    transact<T>(work: TransactionWork<PoolClient, T, "async">): Promise<T> {
      return inTransaction(async (client) => work(client));
    },
    completeWithin<T>(
      input: CompleteWithinInput,
      work: TransactionWork<PoolClient, AtomicCompletion<T>, "async">,
    ): Promise<CompleteWithinResult<T>> {
      return inTransaction(async (client): Promise<CompleteWithinResult<T>> => {
        const { key, owner, attempt, retentionMs, tombstoneMs } = input;
        // A record this execution completed already is `not_owner` too: the
        // work must not run a second time.
        const held = await client.query(lockClaim([...keyValues(key), owner, attempt - 1]));
        if (held.rowCount !== 1) {
          return { kind: "not_owner" };
        }
        const { value, outcome, outcomeCode } = await work(client);
        const completed = await client.query<{ completed: boolean }>(
          statements.complete({ key, owner, attempt, outcome, retentionMs, tombstoneMs, outcomeCode }),
        );
        if (completed.rows[0]?.completed !== true) {
          // The work itself deleted or changed the locked record: undo its writes.
          throw new Error("createPostgresStore: the claim changed inside its own completion transaction");
        }
        return { kind: "completed", value };
      });
    },
    async getPhase(input) {
      const values = [...keyValues(input.key), toPostgresText(input.name)];
      const row = (await init.pool().query<{ result: Buffer }>(getPhase(values))).rows[0];
      return row === undefined
        ? undefined
        : new Uint8Array(row.result.buffer, row.result.byteOffset, row.result.byteLength);
    },
    async recordPhase(input) {
      const values = [
        ...keyValues(input.key),
        input.owner,
        input.attempt - 1,
        toPostgresText(input.name),
        input.result,
      ];
      return (await init.pool().query(recordPhase(values))).rowCount === 1;
    },
  };
}
