import { execFile } from "node:child_process";
import { chownSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A PostgreSQL cluster of one test's own, to crash and restart without touching the shared one. */
export interface PrivatePostgres {
  /** Its `postgres` database, over TCP on loopback. */
  readonly connectionString: string;
  /**
   * Restarts the server. `immediate` kills every backend without a
   * checkpoint, as a crash does: transactions that committed survive
   * (recovery replays the WAL), and answers still on their way are lost.
   */
  restart(mode: "fast" | "immediate"): Promise<void>;
  /** Stops the server and deletes its files. */
  stop(): Promise<void>;
}

/**
 * Creates and starts a cluster (initdb, trust authentication) in a
 * temporary directory on `port`. PostgreSQL refuses to run as root, so the
 * server runs as the `postgres` user.
 */
export async function startPrivatePostgres(port: number): Promise<PrivatePostgres> {
  const bin = join("/usr/lib/postgresql", newestVersion(), "bin");
  const dir = mkdtempSync(join(tmpdir(), "private-postgres-"));
  const data = join(dir, "data");
  const uid = Number((await run("id", ["-u", "postgres"])).stdout.trim());
  const gid = Number((await run("id", ["-g", "postgres"])).stdout.trim());
  chownSync(dir, uid, gid);
  const asPostgres = (tool: string, args: readonly string[]) =>
    run("runuser", ["-u", "postgres", "--", join(bin, tool), ...args], { cwd: dir });
  const ctl = (args: readonly string[]) => asPostgres("pg_ctl", ["-D", data, "-l", join(dir, "log"), ...args]);
  await asPostgres("initdb", ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=on`;
  await ctl(["-o", options, "-w", "start"]);
  let stopped = false;
  return {
    connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async restart(mode) {
      await ctl(["-m", mode, "-o", options, "-w", "restart"]);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await ctl(["-m", "immediate", "-w", "stop"]).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function newestVersion(): string {
  const versions = readdirSync("/usr/lib/postgresql").sort((a, b) => Number(a) - Number(b));
  const newest = versions.at(-1);
  if (newest === undefined) throw new Error("no PostgreSQL in /usr/lib/postgresql");
  return newest;
}
