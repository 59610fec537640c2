import { randomBytes, randomUUID } from "node:crypto";
import { copyFile, mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import Database from "better-sqlite3";
import {
  migrateSqliteSchema,
  quoteSqliteIdentifier,
  sqliteDefaultTable,
  sqliteRecordColumns,
  sqliteSchemaVersion,
} from "../src/store/sqlite/sqlite-schema.js";
import { createSqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { recordChecksum } from "../src/store/record-checksum.js";
import { paymentRecordMethod, paymentRecordScope, storedPaymentOutcome } from "./payment-request.js";

/** Where a prefilled database came from. */
export interface PrefillReport {
  /** The cached file the copy was made from. */
  readonly cachedPath: string;
  /** Whether this run built the cached file (false: an earlier run did). */
  readonly built: boolean;
  /** Milliseconds spent building (0 when cached) and copying. */
  readonly buildMs: number;
  readonly copyMs: number;
}

// Far enough ahead that no sweeper ever deletes a prefilled record.
const farFuture = Date.UTC(2100, 0, 1);

/**
 * Copies a SQLite store file holding `rows` completed CreatePayment records
 * to `dest`. The file is built once per row count and schema version in
 * `cacheDir` and reused by later runs: a million rows take several seconds to
 * insert, a copy a fraction of that.
 */
export async function copyPrefilledSqlite(rows: number, cacheDir: string, dest: string): Promise<PrefillReport> {
  const prefix = `sqlite-${rows}-rows-schema-v`;
  const cachedPath = join(cacheDir, `${prefix}${sqliteSchemaVersion}.db`);
  let built = false;
  let buildMs = 0;
  if (!(await exists(cachedPath))) {
    await mkdir(cacheDir, { recursive: true });
    const started = performance.now();
    // Built under another name and renamed, so an interrupted build is never taken for a cached file.
    const building = `${cachedPath}.${process.pid}.tmp`;
    try {
      await buildPrefilledSqlite(building, rows);
      await rename(building, cachedPath);
    } finally {
      await rm(building, { force: true });
    }
    built = true;
    buildMs = performance.now() - started;
    // Files of older schema versions are never read again; at a million rows each is hundreds of MB.
    for (const name of await readdir(cacheDir)) {
      if (name.startsWith(prefix) && join(cacheDir, name) !== cachedPath) {
        await rm(join(cacheDir, name), { force: true });
      }
    }
  }
  const copyStarted = performance.now();
  await copyFile(cachedPath, dest);
  // On disk before the first round: otherwise the first checkpoint's fsync of
  // the copy writes all of it back, inside a measured round.
  const copy = await open(dest, "r+");
  try {
    await copy.sync();
  } finally {
    await copy.close();
  }
  return { cachedPath, built, buildMs, copyMs: performance.now() - copyStarted };
}

/**
 * Creates the file through the store itself (its pragmas and migrations),
 * then bulk-inserts the records in one transaction, with the keys sorted so
 * that the primary key index is built by appending.
 */
async function buildPrefilledSqlite(path: string, rows: number): Promise<void> {
  await createSqliteStore({ path, sweepIntervalMs: 0 }).close();
  const db = new Database(path);
  try {
    // A fresh table needs no WAL: a rollback journal and no syncing make the
    // one big insert fast. The store switches the file back to WAL on open.
    db.pragma("journal_mode = DELETE");
    db.pragma("synchronous = OFF");
    migrateSqliteSchema(db, sqliteDefaultTable);
    // Named after the store's own column list, so that a column this code does not fill fails loudly.
    const columns = sqliteRecordColumns.split(",").map((column) => column.trim());
    const insert = db.prepare(
      `INSERT INTO ${quoteSqliteIdentifier(sqliteDefaultTable)} (${columns.join(", ")}) VALUES (${columns.map((c) => `@${c}`).join(", ")})`,
    );
    const keys = Array.from({ length: rows }, () => randomUUID()).sort();
    const outcome = storedPaymentOutcome(randomUUID());
    const now = Date.now();
    db.transaction(() => {
      for (const key of keys) {
        const fingerprint = randomBytes(32).toString("hex");
        insert.run({
          scope: paymentRecordScope,
          method: paymentRecordMethod,
          key,
          status: "completed",
          fingerprint,
          owner: randomUUID(),
          created_at: now,
          updated_at: now,
          lease_until: now,
          expires_at: farFuture,
          takeovers: 0,
          replaced: "none",
          interrupted: 0,
          outcome,
          // As the store writes them, so that a replay of a prefilled record passes its check.
          checksum: recordChecksum({
            scope: paymentRecordScope,
            method: paymentRecordMethod,
            key,
            fingerprint,
            status: "completed",
            lifetimeMs: farFuture - now,
            outcome,
          }),
          replay_until: null,
          outcome_code: null,
        });
      }
    })();
    db.pragma("journal_mode = WAL");
  } finally {
    db.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
