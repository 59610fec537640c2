/**
 * Measures what tombstones cost on each store: bytes per completed record
 * (with its CreatePayment response) and per tombstone (after the sweeper's
 * first stage dropped the response), table and indexes together, and the
 * time of each sweeper stage per 1,000 records.
 *
 * ```sh
 * npx tsx bench/tombstone-footprint.ts [records] [postgres-url]
 * ```
 *
 * Records are aged by moving every time of their rows by the same amount,
 * which keeps their checksums intact (they cover durations, not times).
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import type { IdempotencyStore } from "../src/store/idempotency-store.js";
import { createPostgresStore } from "../src/store/postgres/postgres-store.js";
import { createSqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { paymentRecordMethod, paymentRecordScope, storedPaymentOutcome } from "./payment-request.js";

const day = 24 * 60 * 60 * 1000;
const records = Number(process.argv[2] ?? 20_000);
const postgresUrl = process.argv[3] ?? "postgres://postgres@127.0.0.1:5432/test";

/** One store under measurement: how to age its rows and how big its table is. */
interface Subject {
  readonly name: string;
  readonly store: IdempotencyStore;
  /** Moves every time of every row back by `ms`. */
  age(ms: number): Promise<void>;
  /** Bytes of the records table and its indexes, after compaction. */
  size(): Promise<number>;
  close(): Promise<void>;
}

async function fill(store: IdempotencyStore): Promise<void> {
  for (let i = 0; i < records; i++) {
    const requestId = randomUUID();
    const key = { scope: paymentRecordScope, method: paymentRecordMethod, key: requestId };
    await store.claim({
      key,
      fingerprint: `2:${"a".repeat(64)}`,
      owner: randomUUID(),
      leaseMs: 30_000,
      graceMs: 2_000,
      expiresInMs: day,
    });
    const claimed = await store.get(key);
    await store.complete({
      key,
      owner: claimed?.owner ?? "",
      attempt: 1,
      outcome: storedPaymentOutcome(requestId),
      retentionMs: day,
      tombstoneMs: 30 * day,
      outcomeCode: 0,
    });
  }
}

async function timedSweep(store: IdempotencyStore): Promise<number> {
  const started = performance.now();
  await store.sweep({ limit: Number.POSITIVE_INFINITY });
  return performance.now() - started;
}

async function measure(subject: Subject): Promise<void> {
  const { store } = subject;
  await fill(store);
  const full = await subject.size();
  await subject.age(2 * day);
  const stage1Ms = await timedSweep(store);
  const tombstones = await subject.size();
  await subject.age(40 * day);
  const stage2Ms = await timedSweep(store);
  const left = await subject.size();
  console.log(
    `${subject.name}: ${records} records; ${(full / records).toFixed(0)} B per full record, ` +
      `${(tombstones / records).toFixed(0)} B per tombstone (empty table: ${left} B); ` +
      `stage 1 (drop bodies) ${((stage1Ms / records) * 1000).toFixed(1)} ms per 1,000, ` +
      `stage 2 (delete) ${((stage2Ms / records) * 1000).toFixed(1)} ms per 1,000`,
  );
  await subject.close();
}

async function sqliteSubject(): Promise<Subject> {
  const dir = mkdtempSync(join(tmpdir(), "tombstone-footprint-"));
  const path = join(dir, "store.db");
  let offset = 0;
  const store = createSqliteStore({ path, sweepIntervalMs: 0, clock: { now: () => Date.now() + offset } });
  const side = new Database(path);
  return {
    name: "SQLite",
    store,
    // The store's clock moves forward rather than the rows back: the same for a record.
    async age(ms) {
      offset += ms;
    },
    async size() {
      side.pragma("wal_checkpoint(TRUNCATE)");
      side.exec("VACUUM");
      const rows = side
        .prepare<[], { bytes: number }>(
          "SELECT sum(pgsize) AS bytes FROM dbstat WHERE name LIKE 'connect_idempotency_records%' AND name NOT LIKE '%phases%'",
        )
        .all();
      return rows[0]?.bytes ?? 0;
    },
    async close() {
      await store.close();
      side.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function postgresSubject(): Promise<Subject> {
  const schema = `tombstone_footprint_${process.pid}`;
  const admin = new pg.Pool({ connectionString: postgresUrl, max: 1 });
  const store = await createPostgresStore({ connectionString: postgresUrl, schema, sweepIntervalMs: 0 });
  const table = `"${schema}".connect_idempotency_records`;
  return {
    name: "PostgreSQL",
    store,
    async age(ms) {
      await admin.query(
        `UPDATE ${table} SET created_at = created_at - $1, updated_at = updated_at - $1, lease_until = lease_until - $1,
  expires_at = expires_at - $1, replay_until = replay_until - $1`,
        [ms],
      );
      await admin.query(`VACUUM ${table}`);
    },
    async size() {
      await admin.query(`VACUUM FULL ${table}`);
      const result = await admin.query<{ bytes: string }>("SELECT pg_total_relation_size($1::regclass) AS bytes", [
        table,
      ]);
      return Number(result.rows[0]?.bytes ?? 0);
    },
    async close() {
      await store.close();
      await admin.query(`DROP SCHEMA "${schema}" CASCADE`);
      await admin.end();
    },
  };
}

await measure(await sqliteSubject());
await measure(await postgresSubject());
