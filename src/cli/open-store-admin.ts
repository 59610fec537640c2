import { existsSync } from "node:fs";
import type { IdempotencyStoreAdmin } from "../store/idempotency-store-admin.js";
import { openPostgresStoreAdmin } from "../store/postgres/postgres-store-admin.js";
import { openSqliteStoreAdmin } from "../store/sqlite/sqlite-store-admin.js";
import { createCliError } from "./cli-error.js";

/** The options that say which store a command works on. */
export interface StoreFlags {
  /** A SQLite store's file. */
  readonly db?: string;
  /** A PostgreSQL store's connection string. */
  readonly postgres?: string;
  /** The PostgreSQL schema. */
  readonly schema?: string;
  /** The records table. */
  readonly table?: string;
}

/**
 * Opens the store the flags name, read-only unless the command changes
 * records. Every failure to open is the operator's to fix (a missing file,
 * a bad URL, an unreachable server, no records table), so it exits with 2.
 */
export async function openStoreAdmin(flags: StoreFlags, access: "read" | "write"): Promise<IdempotencyStoreAdmin> {
  const readonly = access === "read";
  if ((flags.db === undefined) === (flags.postgres === undefined)) {
    throw createCliError("name the store with --db FILE (SQLite) or --postgres URL (PostgreSQL)");
  }
  if (flags.db !== undefined) {
    if (flags.schema !== undefined) {
      throw createCliError("--schema applies to --postgres only");
    }
    if (!existsSync(flags.db)) {
      throw createCliError(`no such file: ${flags.db}`);
    }
    try {
      return openSqliteStoreAdmin({ path: flags.db, table: flags.table, readonly });
    } catch (error) {
      throw createCliError(messageOf(error), { cause: error });
    }
  }
  const url = flags.postgres as string;
  const shown = redactPassword(url);
  if (!isPostgresUrl(url)) {
    throw createCliError(`bad PostgreSQL URL ${JSON.stringify(shown)}: expected postgres://USER@HOST:PORT/DATABASE`);
  }
  try {
    return await openPostgresStoreAdmin({
      connectionString: url,
      schema: flags.schema,
      table: flags.table,
      readonly,
    });
  } catch (error) {
    throw createCliError(`${shown}: ${messageOf(error)}`, { cause: error });
  }
}

function isPostgresUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === "postgres:" || url.protocol === "postgresql:") && url.hostname !== "";
  } catch {
    return false;
  }
}

// Messages must never print a password from the command line.
function redactPassword(text: string): string {
  try {
    const url = new URL(text);
    if (url.password !== "") {
      url.password = "***";
    }
    return url.toString();
  } catch {
    return text.replace(/\/\/([^:/@]*):[^@/]*@/, "//$1:***@");
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
