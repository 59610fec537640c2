import cluster, { type Worker } from "node:cluster";
import { availableParallelism } from "node:os";

/** A worker that exited. */
export interface ClusterWorkerExit {
  /** The worker's process ID. */
  readonly pid: number;
  /** Its exit code, or null when a signal ended it. */
  readonly code: number | null;
  /** The signal that ended it, such as `SIGKILL`, or null. */
  readonly signal: string | null;
  /** Whether a replacement is forked. */
  readonly respawn: boolean;
}

/** Options of `runCluster`. */
export interface RunClusterOptions {
  /**
   * The server script each worker runs. Default: the primary's own script
   * (`process.argv[1]`), which then starts its server when
   * `cluster.isPrimary` is false. Workers get the primary's `execArgv`,
   * such as `--import tsx`.
   */
  readonly exec?: string;
  /** Arguments of the worker script. Default: the primary's own. */
  readonly args?: readonly string[];
  /** Worker processes. Default: `os.availableParallelism()`. */
  readonly workers?: number;
  /** Called once every worker listens, with the shared port and the workers' process IDs. */
  readonly onReady?: (ready: { readonly port: number; readonly pids: readonly number[] }) => void;
  /** Called when a worker exits. */
  readonly onWorkerExit?: (exit: ClusterWorkerExit) => void;
  /** How long to wait before replacing a worker that died. Default 1,000 ms. */
  readonly respawnDelayMs?: number;
  /** How long workers may drain on shutdown before they are killed. Default 10,000 ms. */
  readonly shutdownTimeoutMs?: number;
}

/**
 * The default `respawnDelayMs`: a second before a dead worker is replaced,
 * so that a worker that dies at start does not restart in a tight loop.
 */
export const defaultRespawnDelayMs = 1_000;
/**
 * The default `shutdownTimeoutMs`: 10 s for workers to finish their calls
 * on shutdown, inside the 30 s that Kubernetes and most supervisors give a
 * process before they kill it.
 */
export const defaultShutdownTimeoutMs = 10_000;

/**
 * Runs several server processes behind one port with `node:cluster`. Call
 * it in the primary process. Each worker runs an ordinary server script:
 * it opens its own store (one SQLite file in WAL mode, or one PostgreSQL
 * database, shared by all workers), listens on a port (the cluster shares
 * it: every worker accepts connections on the port the first one got), and
 * on SIGTERM closes its server and store and exits. The store makes the
 * processes agree: a request ID claimed in one worker is a duplicate in all
 * others, and the claim of a worker that dies is taken over by another once
 * its lease ends.
 *
 * Forks the workers, calls `onReady` once each of them listens, and replaces
 * a worker that dies after that. On SIGTERM or SIGINT it sends SIGTERM to
 * every worker, waits for them to exit (killing those that take longer than
 * `shutdownTimeoutMs`) and resolves. When a worker exits before all of them
 * listen, it stops the others and rejects, instead of replacing workers that
 * would most likely fail the same way.
 *
 * Connections, not calls, are spread across workers: a client keeps its
 * HTTP/2 connection, so one client talks to one worker.
 */
export function runCluster(options: RunClusterOptions = {}): Promise<void> {
  if (!cluster.isPrimary) {
    return Promise.reject(new Error("runCluster: call it in the primary process, not in a worker"));
  }
  const count = options.workers ?? availableParallelism();
  if (!Number.isInteger(count) || count < 1) {
    return Promise.reject(new Error(`runCluster: workers must be a positive integer, got ${count}`));
  }
  const respawnDelayMs = options.respawnDelayMs ?? defaultRespawnDelayMs;
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? defaultShutdownTimeoutMs;
  cluster.setupPrimary({
    ...(options.exec === undefined ? {} : { exec: options.exec }),
    ...(options.args === undefined ? {} : { args: [...options.args] }),
  });
  const workers = new Set<Worker>();
  const listening = new Set<Worker>();
  let ready = false;
  let stopping = false;
  let failure: Error | undefined;

  return new Promise<void>((resolve, reject) => {
    const fork = () => {
      const worker = cluster.fork();
      workers.add(worker);
      worker.on("listening", (address) => {
        listening.add(worker);
        if (!ready && listening.size === count) {
          ready = true;
          options.onReady?.({ port: address.port, pids: [...listening].map((w) => w.process.pid ?? 0) });
        }
      });
      worker.on("exit", (code, signal) => {
        workers.delete(worker);
        listening.delete(worker);
        const respawn = ready && !stopping;
        options.onWorkerExit?.({ pid: worker.process.pid ?? 0, code, signal, respawn });
        if (respawn) {
          setTimeout(() => {
            if (!stopping) fork();
          }, respawnDelayMs);
        } else if (!stopping) {
          failure = new Error(
            `runCluster: a worker exited with ${signal ?? `code ${code}`} before every worker listened`,
          );
          stop();
        }
      });
    };
    const stop = () => {
      if (stopping) return;
      stopping = true;
      process.off("SIGTERM", stop);
      process.off("SIGINT", stop);
      const exits = [...workers].map((worker) => new Promise<void>((done) => worker.once("exit", () => done())));
      for (const worker of workers) worker.process.kill("SIGTERM");
      const timer = setTimeout(() => {
        for (const worker of workers) worker.process.kill("SIGKILL");
      }, shutdownTimeoutMs);
      void Promise.all(exits).then(() => {
        clearTimeout(timer);
        if (failure === undefined) resolve();
        else reject(failure);
      });
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
    for (let i = 0; i < count; i++) fork();
  });
}
