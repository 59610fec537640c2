import { execFile } from "node:child_process";
import { chownSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The server binaries: `POSTGRES_BIN`, else Debian's newest installed version. */
const bin = process.env.POSTGRES_BIN ?? join("/usr/lib/postgresql", newestVersion(), "bin");

/**
 * A PostgreSQL cluster of one test file's own, for what must never happen to
 * the shared database at 5432: stopping it for a while, then starting it
 * again, and restarting it, even with `-m immediate` as a crash would. From
 * `startPrivateCluster`.
 */
export interface PrivateCluster {
  /** The port it listens on, on 127.0.0.1. */
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication). */
  readonly connectionString: string;
  /** Stops the server (`pg_ctl stop -m fast`) and waits until it is down. */
  stop(): Promise<void>;
  /** Starts the stopped server and waits until it accepts connections. */
  start(): Promise<void>;
  /** `pg_ctl restart -m <mode>`: waits until it accepts connections again. */
  restart(mode: "fast" | "immediate"): Promise<void>;
  /** Stops the server (immediately) and deletes its data folder. Idempotent. */
  remove(): Promise<void>;
}

/**
 * Creates a cluster with `initdb` in a new folder owned by the OS user
 * `postgres` (the server refuses to run as root) and starts it on a free port
 * from 55433 up, with a random offset so that two test files (or two
 * engineers) rarely pick the same one. `fsync: true` makes commits reach the
 * disk, for tests of what survives a crash; by default the cluster skips
 * fsync, which only a crash of the machine would notice.
 */
export async function startPrivateCluster(options: { readonly fsync?: boolean } = {}): Promise<PrivateCluster> {
  const dir = mkdtempSync(join(tmpdir(), "idem-pg-"));
  const { uid, gid } = await postgresUser();
  chownSync(dir, uid, gid);
  const data = join(dir, "data");
  await asPostgres(`${bin}/initdb`, ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]);
  const port = await freePort(55433 + Math.floor(Math.random() * 2000));
  const serverOptions = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=${options.fsync === true ? "on" : "off"} -c max_connections=100`;
  const ctl = (...args: string[]) => asPostgres(`${bin}/pg_ctl`, ["-D", data, "-l", join(dir, "log"), ...args]);
  await ctl("-o", serverOptions, "-w", "start");
  let removed = false;
  return {
    port,
    connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop: () => ctl("-m", "fast", "-w", "stop").then(() => undefined),
    start: () => ctl("-o", serverOptions, "-w", "start").then(() => undefined),
    restart: (mode) => ctl("-o", serverOptions, "-m", mode, "-w", "restart").then(() => undefined),
    async remove() {
      if (removed) {
        return;
      }
      removed = true;
      await ctl("-m", "immediate", "-w", "stop").catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function asPostgres(command: string, args: string[]) {
  return run("runuser", ["-u", "postgres", "--", command, ...args], { timeout: 60_000 });
}

async function postgresUser(): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run("id", ["-u", "postgres"]), run("id", ["-g", "postgres"])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

async function freePort(from: number): Promise<number> {
  for (let port = from; port < from + 200; port++) {
    const free = await new Promise<boolean>((resolve) => {
      const probe = createServer();
      probe.once("error", () => resolve(false));
      probe.listen(port, "127.0.0.1", () => probe.close(() => resolve(true)));
    });
    if (free) {
      return port;
    }
  }
  throw new Error(`no free port from ${from}`);
}

function newestVersion(): string {
  const versions = readdirSync("/usr/lib/postgresql").sort((a, b) => Number(a) - Number(b));
  const newest = versions.at(-1);
  if (newest === undefined) throw new Error("no PostgreSQL in /usr/lib/postgresql");
  return newest;
}
