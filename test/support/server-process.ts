import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** What `startServerProcess` starts. */
export interface ServerProcessOptions {
  /** The TypeScript server script, run with `node --import tsx`. */
  readonly script: string;
  /** Environment variables on top of this process's environment. */
  readonly env?: Readonly<Record<string, string>>;
  /** How long to wait for the port line. Default 20 s (tsx compiles on start). */
  readonly startTimeoutMs?: number;
}

/** A server running in a child process. */
export interface ServerProcess {
  /** The port the child announced. */
  readonly port: number;
  /** `http://127.0.0.1:<port>`. */
  readonly baseUrl: string;
  /** The child's process ID. */
  readonly pid: number;
  /** Resolves with the exit code (null when killed by a signal) once the child has exited. */
  readonly exited: Promise<number | null>;
  /** What the child wrote to stderr so far, for failure messages. */
  stderr(): string;
  /** What the child wrote to stdout so far, the `listening` line included. */
  stdout(): string;
  /** Sends a signal (SIGKILL by default) and waits for the child to exit. No-op once exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Kills the child if it still runs, then starts the same script again (on a new port). */
  restart(): Promise<ServerProcess>;
}

/** The repository root, where `tsx` resolves. */
const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/**
 * Starts `node --import tsx <script>` and resolves once the child printed a
 * line `listening <port>` on stdout. Rejects with the child's stderr when it
 * exits or times out first.
 */
export async function startServerProcess(options: ServerProcessOptions): Promise<ServerProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", options.script], {
    cwd: repoRoot,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  let stdout = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const port = await waitForPort(child, exited, options.startTimeoutMs ?? 20_000, () => stderr);
  const handle: ServerProcess = {
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    pid: child.pid ?? -1,
    exited,
    stderr: () => stderr,
    stdout: () => stdout,
    async kill(signal = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
      }
      await exited;
    },
    async restart() {
      await handle.kill();
      return startServerProcess(options);
    },
  };
  return handle;
}

function waitForPort(
  child: ChildProcess,
  exited: Promise<number | null>,
  timeoutMs: number,
  stderr: () => string,
): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`server process did not start within ${timeoutMs} ms:\n${stderr()}`));
    }, timeoutMs);
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      const match = /^listening (\d+)$/m.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server process exited with ${code} before listening:\n${stderr()}`));
    });
  });
}
