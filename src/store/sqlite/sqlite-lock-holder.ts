import { readFileSync, statSync } from "node:fs";

/** A process that holds the write lock of a SQLite database. */
export interface SqliteLockHolder {
  /** Its process ID, as this process's PID namespace sees it. */
  readonly pid: number;
  /** Its command line, shortened, when readable. */
  readonly command: string | undefined;
}

// SQLite's unix VFS locks these bytes (see os_unix.c and wal.c). In WAL mode
// the write lock is byte 120 of the -shm file (WALINDEX_LOCK_OFFSET plus
// WAL_WRITE_LOCK); a rollback-journal database, or one in exclusive locking
// mode, write-locks RESERVED_BYTE or the shared range of the database file.
const walWriteLockByte = 120;
const reservedByte = 0x40000001;
const sharedFirstByte = 0x40000002;

/**
 * Finds which process holds the write lock of the SQLite database at `path`,
 * from `/proc/locks`: best effort, on Linux only, and only for processes on
 * this machine (in this PID namespace). Undefined when it cannot tell.
 */
export function findSqliteLockHolder(path: string): SqliteLockHolder | undefined {
  let locks: string;
  try {
    locks = readFileSync("/proc/locks", "utf8");
  } catch {
    return undefined;
  }
  const shm = fileId(`${path}-shm`);
  const main = fileId(path);
  for (const line of locks.split("\n")) {
    // "1: POSIX  ADVISORY  WRITE 8814 fe:00:2180164 120 120"; waiters
    // ("1: -> POSIX ...") are skipped by the pattern.
    const match =
      /^\d+:\s+(?:POSIX|OFDLCK)\s+\S+\s+WRITE\s+(-?\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s+(\d+)\s+(\d+|EOF)$/.exec(
        line.trim(),
      );
    if (match === null) continue;
    const id = `${Number.parseInt(match[2]!, 16)}:${Number.parseInt(match[3]!, 16)}:${match[4]}`;
    const start = Number(match[5]);
    const end = match[6] === "EOF" ? Number.POSITIVE_INFINITY : Number(match[6]);
    const covers = (byte: number) => start <= byte && byte <= end;
    const holds =
      (id === shm && covers(walWriteLockByte)) || (id === main && (covers(reservedByte) || covers(sharedFirstByte)));
    const pid = Number(match[1]);
    if (holds && pid > 0) {
      return { pid, command: commandOf(pid) };
    }
  }
  return undefined;
}

/**
 * Names the holder of the write lock of `path` for an error message:
 * `"; process 1234 (node server.js) holds it"`, or "" when unknown.
 */
export function describeSqliteLockHolder(path: string): string {
  const holder = findSqliteLockHolder(path);
  if (holder === undefined) {
    return "";
  }
  const who = holder.pid === process.pid ? "this process" : `process ${holder.pid}`;
  return `; ${who}${holder.command === undefined ? "" : ` (${holder.command})`} holds it`;
}

/** `major:minor:inode` as /proc/locks writes them, or undefined. */
function fileId(path: string): string | undefined {
  try {
    const stats = statSync(path, { bigint: true });
    // glibc's gnu_dev_major and gnu_dev_minor.
    const major = ((stats.dev >> 8n) & 0xfffn) | ((stats.dev >> 32n) & ~0xfffn);
    const minor = (stats.dev & 0xffn) | ((stats.dev >> 12n) & ~0xffn);
    return `${major}:${minor}:${stats.ino}`;
  } catch {
    return undefined;
  }
}

function commandOf(pid: number): string | undefined {
  try {
    const command = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
    // Printable ASCII only: the text ends up in messages on terminals.
    const printable = command.replace(/[^\x20-\x7e]/g, "?");
    return printable === "" ? undefined : printable.length > 80 ? `${printable.slice(0, 77)}...` : printable;
  } catch {
    return undefined;
  }
}
