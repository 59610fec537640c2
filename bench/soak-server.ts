import { readFileSync } from "node:fs";
import { type BenchChild, forkChild } from "./child-ipc.js";
import type { SoakMeasurement, SoakServerApi, SoakServerOptions } from "./soak-server-main.js";

export type { SoakMeasurement, SoakServerOptions } from "./soak-server-main.js";

/** One run of a handler, as the soak server's executions file holds it. */
export interface SoakExecution {
  readonly method: string;
  readonly requestId: string;
}

/** The soak server in its child process. */
export interface SoakServer {
  /** `http://127.0.0.1:<port>`. */
  readonly baseUrl: string;
  /** The child's process ID (for `/proc/<pid>/status`). */
  readonly pid: number;
  /** Heap, RSS and active handles of the server after a full gc. */
  measure(): Promise<SoakMeasurement>;
  /** Every handler run so far, in order. */
  executions(): SoakExecution[];
  /** Closes the server and waits for its exit; kills it when it does not stop within 10 s. */
  stop(): Promise<void>;
}

/** Starts `soak-server-main.ts` with `--expose-gc` and waits until it listens. */
export async function startSoakServer(options: SoakServerOptions): Promise<SoakServer> {
  const child: BenchChild<SoakServerApi> = forkChild(new URL("./soak-server-main.ts", import.meta.url), {
    execArgv: ["--expose-gc"],
  });
  let baseUrl: string;
  try {
    baseUrl = await child.call("start", options);
  } catch (error) {
    child.kill();
    throw error;
  }
  return {
    baseUrl,
    pid: child.pid,
    measure: () => child.call("measure"),
    executions: () =>
      readFileSync(options.executionsFile, "utf8")
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => {
          const [method, requestId] = line.split("\t") as [string, string];
          return { method, requestId: JSON.parse(requestId) as string };
        }),
    async stop() {
      const timer = setTimeout(() => child.kill(), 10_000);
      await child.stop("stop");
      clearTimeout(timer);
    },
  };
}
