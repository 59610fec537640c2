import Database from "better-sqlite3";
import { quoteSqliteIdentifier, sqliteDefaultTable } from "../src/store/sqlite/sqlite-schema.js";
import { createSqliteStore } from "../src/store/sqlite/sqlite-store.js";
import type { CreatePaymentRequest } from "../gen/demo/v1/payments_pb.js";
import { createPaymentsTable } from "../demo/payment-service.js";
import { paymentRecordMethod, paymentRecordScope } from "./payment-request.js";
import { insertSqlite, rowValues } from "./payment-row-services.js";

/**
 * The least a SQLite-backed idempotency layer writes per call, as bare
 * better-sqlite3 statements on the store's own table: the claim's `INSERT`
 * and the completion's `UPDATE` of a new key, with what one turn of the event
 * loop submits sharing one transaction (as the store's group commit does),
 * durability normal. No fingerprint check, lease, fencing, checksum, expiry
 * update, savepoint or error handling beyond rejecting a failed batch: what
 * the store does beyond this is what the floor rows leave out.
 */
export interface SqliteFloor {
  /** Inserts the in-progress record of a new key. */
  claim(key: string, owner: string): Promise<void>;
  /** Stores `outcome` in the record `claim` inserted. */
  complete(key: string, owner: string, outcome: Uint8Array): Promise<void>;
  /**
   * Inserts the payment row of `req` and stores `outcome` in its record, in
   * the same transaction (the floor of a `commit`).
   */
  commitRow(req: CreatePaymentRequest, owner: string, outcome: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

interface FloorJob {
  readonly run: () => void;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

const leaseMs = 30_000;
const retentionMs = 24 * 3600_000;

/**
 * Opens the floor on a new SQLite file at `path`. The file gets its schema
 * from `createSqliteStore`, so that the floor's rows land in the same table,
 * indexes and page layout as the store's.
 */
export async function openSqliteFloor(path: string): Promise<SqliteFloor> {
  await (await createSqliteStore({ path })).close();
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  const table = quoteSqliteIdentifier(sqliteDefaultTable);
  const insert = db.prepare<[string, string, string, string, number, number, number, number]>(
    `INSERT INTO ${table} (scope, method, key, status, fingerprint, owner, created_at, updated_at, lease_until, expires_at)
  VALUES (?, ?, ?, 'in_progress', '', ?, ?, ?, ?, ?)`,
  );
  const update = db.prepare<[Uint8Array, number, string, string, string, string]>(
    `UPDATE ${table} SET status = 'completed', outcome = ?, updated_at = ?, lease_until = updated_at
  WHERE scope = ? AND method = ? AND key = ? AND owner = ? AND status = 'in_progress'`,
  );
  createPaymentsTable(db);
  const insertRow = db.prepare<ReturnType<typeof rowValues>>(insertSqlite);
  const begin = db.prepare("BEGIN IMMEDIATE");
  const commit = db.prepare("COMMIT");
  let queue: FloorJob[] = [];
  const completeRecord = (key: string, owner: string, outcome: Uint8Array) => {
    if (update.run(outcome, Date.now(), paymentRecordScope, paymentRecordMethod, key, owner).changes !== 1) {
      throw new Error(`the floor's completion found no claim of ${key}`);
    }
  };

  const flush = () => {
    const batch = queue;
    queue = [];
    try {
      begin.run();
      for (const job of batch) {
        job.run();
      }
      commit.run();
    } catch (error) {
      if (db.inTransaction) {
        db.exec("ROLLBACK");
      }
      for (const job of batch) {
        job.reject(error);
      }
      return;
    }
    for (const job of batch) {
      job.resolve();
    }
  };
  const submit = (run: () => void) =>
    new Promise<void>((resolve, reject) => {
      if (queue.length === 0) {
        setImmediate(flush);
      }
      queue.push({ run, resolve, reject });
    });

  return {
    claim(key, owner) {
      return submit(() => {
        const now = Date.now();
        insert.run(paymentRecordScope, paymentRecordMethod, key, owner, now, now, now + leaseMs, now + retentionMs);
      });
    },
    complete(key, owner, outcome) {
      return submit(() => completeRecord(key, owner, outcome));
    },
    commitRow(req, owner, outcome) {
      return submit(() => {
        insertRow.run(...rowValues(req));
        completeRecord(req.requestId, owner, outcome);
      });
    },
    async close() {
      db.close();
    },
  };
}
