import { readFile } from "node:fs/promises";
import { createClient } from "@redis/client";
import pg from "pg";

/**
 * Measures the CPU time a backing service (Redis, PostgreSQL) spends for one
 * scenario, so that the cost of a store is counted whether it runs inside the
 * server process (SQLite) or in another one.
 */
export interface ServiceCpuMeter {
  /** Starts measuring; the returned function ends it and resolves to the CPU microseconds spent in between. */
  begin(): Promise<() => Promise<number>>;
  close(): Promise<void>;
}

/** Reads Redis's own CPU counters (`INFO cpu`): the whole server, which only the peer scenarios use. */
export async function createRedisCpuMeter(url: string): Promise<ServiceCpuMeter> {
  const client = await createClient({ url }).connect();
  const read = async () => {
    const info = await client.info("cpu");
    const seconds = (name: string) => Number(new RegExp(`^${name}:([0-9.]+)`, "m").exec(info)?.[1] ?? Number.NaN);
    return (seconds("used_cpu_user") + seconds("used_cpu_sys")) * 1e6;
  };
  return {
    async begin() {
      const before = await read();
      return async () => (await read()) - before;
    },
    async close() {
      client.destroy();
    },
  };
}

/**
 * Sums the CPU time of the PostgreSQL backends serving connections with
 * `applicationName`, from /proc (Linux only; elsewhere it measures nothing).
 * Other sessions on the same server, such as tests running in parallel, are
 * left out.
 */
export async function createPostgresCpuMeter(
  connectionString: string,
  applicationName: string,
): Promise<ServiceCpuMeter> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  const ticksPerSecond = 100; // USER_HZ, which /proc reports in on Linux
  const backendMicros = async (pid: number): Promise<number> => {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, "utf8");
      // Fields after the command name, which may contain spaces: utime and stime are the 12th and 13th.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return ((Number(fields[11]) + Number(fields[12])) / ticksPerSecond) * 1e6;
    } catch {
      return 0;
    }
  };
  return {
    async begin() {
      const result = await client.query<{ pid: number }>(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
        [applicationName],
      );
      const pids = result.rows.map((row) => row.pid);
      const before = await Promise.all(pids.map(backendMicros));
      const after = async () => Promise.all(pids.map(backendMicros));
      // A backend that exited in between reads 0: count nothing for it rather than a negative time.
      return async () => (await after()).reduce((sum, micros, i) => sum + Math.max(0, micros - (before[i] ?? 0)), 0);
    },
    async close() {
      await client.end();
    },
  };
}
