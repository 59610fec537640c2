import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import type { IdempotencyStoreAdmin } from "../store/idempotency-store-admin.js";
import { openPostgresStoreAdmin } from "../store/postgres/postgres-store-admin.js";
import { openSqliteStoreAdmin } from "../store/sqlite/sqlite-store-admin.js";
import { createCliError } from "./cli-error.js";
import { operatorMessage } from "./operator-message.js";

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
  /** How long a write waits for another process's write lock, in ms (SQLite only). */
  readonly wait?: number;
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
    if (statSync(flags.db).isDirectory()) {
      throw createCliError(directoryMessage(flags.db));
    }
    try {
      return openSqliteStoreAdmin({ path: flags.db, table: flags.table, readonly, busyTimeoutMs: flags.wait });
    } catch (error) {
      throw createCliError(operatorMessage(error), { cause: error });
    }
  }
  if (flags.wait !== undefined) {
    throw createCliError(
      "--wait applies to --db only: a PostgreSQL statement waits up to the admin's statement_timeout (30 s)",
    );
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
    throw createCliError(`${shown}: ${operatorMessage(error)}`, { cause: error });
  }
}

/** Says that --db named a directory, and which database files it holds, if any. */
function directoryMessage(dir: string): string {
  let files: string[] = [];
  try {
    files = readdirSync(dir)
      .filter((name) => /\.(db|sqlite3?)$/i.test(name))
      .sort()
      .slice(0, 3);
  } catch {
    // Unreadable: just say what it is.
  }
  const suggestion = files.length > 0 ? `; it holds ${files.map((name) => join(dir, name)).join(", ")}` : "";
  return `--db ${dir} is a directory: pass the SQLite file of the store, such as ${join(dir, "idempotency.db")}${suggestion}`;
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
