import { randomUUID } from "node:crypto";
import pg from "pg";
import { quoteIdentifier } from "../src/store/postgres/postgres-identifier.js";
import { migratePostgresSchema } from "../src/store/postgres/postgres-migrations.js";
import {
  postgresChecksumSql,
  postgresClockMs,
  postgresRecordColumns,
} from "../src/store/postgres/postgres-statements.js";
import { paymentRecordMethod, paymentRecordScope, storedPaymentOutcome } from "./payment-request.js";

/** How long a prefill took. */
export interface PostgresPrefillReport {
  /** Milliseconds inserting the records. */
  readonly insertMs: number;
  /** Milliseconds in `VACUUM ANALYZE` afterwards. */
  readonly vacuumMs: number;
}

// Far enough ahead that no sweeper ever deletes a prefilled record.
const farFuture = Date.UTC(2100, 0, 1);

/**
 * Fills the store's default table in `schema` (created through the store's
 * own migrations) with `rows` completed CreatePayment records, in one
 * `INSERT ... SELECT` over `generate_series`: keys of the UUID format
 * (`md5` of the row number, so as scattered across the primary key as the
 * interceptor's) inserted in key order, a fingerprint each, one stored
 * outcome, and a checksum computed by the store's own SQL, so the records
 * read back as intact. The schema belongs to one run and is dropped with
 * it: the database is shared, so nothing is kept between runs (a million
 * rows take tens of seconds on a busy machine; the bench notes the time).
 * `VACUUM ANALYZE` afterwards, so that autovacuum does not start on the
 * fresh table during a measured round and the planner knows its size.
 */
export async function prefillPostgresRecords(
  connectionString: string,
  schema: string,
  rows: number,
): Promise<PostgresPrefillReport> {
  const pool = new pg.Pool({ connectionString, max: 1 });
  try {
    const table = "connect_idempotency_records";
    await migratePostgresSchema(pool, schema, table);
    const qualified = `${quoteIdentifier(schema)}.${quoteIdentifier(table)}`;
    const started = performance.now();
    const checksum = postgresChecksumSql({
      scope: "$1::text",
      method: "$2::text",
      key: "k.key",
      fingerprint: "k.fingerprint",
      status: "'completed'",
      lifetimeMs: "$4::bigint - clock.ms",
      outcome: "$3::bytea",
      replayLifetimeMs: "NULL::bigint",
      outcomeCode: "NULL::integer",
    });
    await pool.query(
      `INSERT INTO ${qualified} (${postgresRecordColumns})
SELECT $1::text, $2::text, k.key, 'completed', k.fingerprint, k.owner, clock.ms, clock.ms, clock.ms, $4::bigint, 0, false, $3::bytea,
  ${checksum}, NULL::bigint, NULL::integer
FROM (
  SELECT md5(i::text)::uuid::text AS key, md5('f' || i) || md5('p' || i) AS fingerprint, md5('o' || i)::uuid::text AS owner
  FROM generate_series(1, $5::int) AS i
  ORDER BY 1
) AS k, (SELECT ${postgresClockMs} AS ms) AS clock`,
      [paymentRecordScope, paymentRecordMethod, storedPaymentOutcome(randomUUID()), farFuture, rows],
    );
    const inserted = performance.now();
    await pool.query(`VACUUM ANALYZE ${qualified}`);
    return { insertMs: inserted - started, vacuumMs: performance.now() - inserted };
  } finally {
    await pool.end();
  }
}
