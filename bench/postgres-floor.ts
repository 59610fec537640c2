import pg from "pg";
import type { CreatePaymentRequest } from "../gen/demo/v1/payments_pb.js";
import { quoteIdentifier } from "../src/store/postgres/postgres-identifier.js";
import { type BenchStoreOptions, required } from "./bench-stores.js";
import { createPostgresPaymentsTable, insertPostgres, rowValues } from "./payment-row-services.js";

/**
 * The least a PostgreSQL-backed idempotency layer with atomic completion
 * does per call, as bare statements: the claim, an `INSERT` of a new key
 * into a table with only a key, an owner and an outcome (the claims of one
 * event loop turn in one autocommitted statement, as the store batches); then
 * the handler's payment row and the outcome's `UPDATE` (which also takes the
 * row lock and checks the owner) in one transaction, sent in one round trip
 * (`pg`'s pipeline mode). No fingerprint, lease, expiry, checksum or
 * separate lock statement.
 */
export interface PostgresFloor {
  /** Inserts the record of a new key. */
  claim(key: string, owner: string): Promise<void>;
  /** Inserts the payment row of `req` and stores `outcome` in its record, in one transaction. */
  commitRow(req: CreatePaymentRequest, owner: string, outcome: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** Opens the floor on a pool of 10 connections, its tables in the scenario's schema. */
export async function openPostgresFloor(options: BenchStoreOptions): Promise<PostgresFloor> {
  const pool = new pg.Pool({
    connectionString: required(options.postgresUrl, "postgresUrl"),
    max: 10,
    pipeline: true,
    ...(options.postgresApplicationName === undefined ? {} : { application_name: options.postgresApplicationName }),
  });
  pool.on("error", () => {});
  const schema = quoteIdentifier(required(options.postgresSchema, "postgresSchema"));
  await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  await pool.query(`CREATE TABLE ${schema}.floor_records (key text PRIMARY KEY, owner text NOT NULL, outcome bytea)`);
  await createPostgresPaymentsTable(pool, schema);
  // The claims of one event loop turn go out as one statement, as the store
  // batches its own: a floor must not pay for a round trip per claim that
  // the store does not.
  const claimBatch = `INSERT INTO ${schema}.floor_records (key, owner) SELECT * FROM unnest($1::text[], $2::text[])`;
  let claims: { key: string; owner: string; resolve: () => void; reject: (error: unknown) => void }[] = [];
  const sendClaims = () => {
    const batch = claims;
    claims = [];
    pool
      .query({
        name: "floor-claims",
        text: claimBatch,
        values: [batch.map((c) => c.key), batch.map((c) => c.owner)],
      })
      .then(
        () => {
          for (const c of batch) c.resolve();
        },
        (error: unknown) => {
          for (const c of batch) c.reject(error);
        },
      );
  };
  const complete = `UPDATE ${schema}.floor_records SET outcome = $3 WHERE key = $1 AND owner = $2 AND outcome IS NULL`;
  const insert = insertPostgres(schema);
  return {
    claim(key, owner) {
      return new Promise<void>((resolve, reject) => {
        if (claims.length === 0) {
          setImmediate(sendClaims);
        }
        claims.push({ key, owner, resolve, reject });
      });
    },
    async commitRow(req, owner, outcome) {
      const client = await pool.connect();
      try {
        const [, completed, , committed] = await Promise.all([
          client.query("BEGIN"),
          client.query({ name: "floor-complete", text: complete, values: [req.requestId, owner, outcome] }),
          client.query({ name: "floor-row", text: insert, values: rowValues(req) }),
          client.query("COMMIT"),
        ]);
        if (completed.rowCount !== 1 || committed.command !== "COMMIT") {
          throw new Error(`the floor's completion found no claim of ${req.requestId}`);
        }
        client.release();
      } catch (error) {
        client.release(true);
        throw error;
      }
    },
    close: () => pool.end(),
  };
}
