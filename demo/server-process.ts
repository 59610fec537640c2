import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { IdempotencyEventType } from "../src/server/idempotency-event.js";
import type { DemoService } from "./demo-server.js";
import type { DemoPostgres } from "./demo-stores.js";

/** What the parent passes to `server-main.ts`, as JSON in its first argument. */
export interface ServerProcessConfig {
  readonly dataDir: string;
  readonly port: number;
  readonly idempotency: boolean;
  readonly leaseMs: number;
  /** How long every charge at the bank takes, in milliseconds. */
  readonly bankLatencyMs: number;
  /** Share of charges whose answer is lost after the bank charged. */
  readonly bankTimeoutRate: number;
  /** Seeds which charges' answers are lost; give each server process its own. */
  readonly seed: number;
  /** The database and schema, when the stores are on PostgreSQL. */
  readonly postgres: DemoPostgres | undefined;
}

/** What `server-main.ts` tells its parent over the IPC channel. */
export type ServerProcessMessage =
  | { readonly kind: "ready"; readonly port: number; readonly clock: number }
  | { readonly kind: "event"; readonly service: DemoService; readonly type: IdempotencyEventType }
  | { readonly kind: "bank_timeout"; readonly reference: string };

/** Options of `startServerProcess`. */
export interface ServerProcessOptions extends Omit<ServerProcessConfig, "port"> {
  /** Receives the interceptors' decisions, from every incarnation of the server. */
  readonly onEvent: (service: DemoService, type: IdempotencyEventType) => void;
  /** Receives the reference (the payment's request ID) of every charge whose answer the link lost. */
  readonly onBankTimeout: (reference: string) => void;
  /** Extra environment of the process, such as libfaketime's. */
  readonly env?: NodeJS.ProcessEnv;
  /** How long to wait for a (re)started server to listen. Defaults to 30 s. */
  readonly startTimeoutMs?: number;
}

/** The demo server in a child process, so that it can be killed for real. */
export interface ServerProcess {
  /** The port every incarnation listens on. */
  readonly port: number;
  /** How far the first incarnation's wall clock was ahead of this process's when it started, in milliseconds. */
  readonly clockOffsetMs: number;
  /** Kills the server with SIGKILL, then starts a new one on the same port and data. */
  crashAndRestart(): Promise<void>;
  /** Stops the server gently (SIGTERM), so that it closes its databases. */
  stop(): Promise<void>;
}

const serverMain = fileURLToPath(new URL("./server-main.ts", import.meta.url));

/** Starts the demo server in a child process on a free port. */
export async function startServerProcess(options: ServerProcessOptions): Promise<ServerProcess> {
  const config = {
    dataDir: options.dataDir,
    idempotency: options.idempotency,
    leaseMs: options.leaseMs,
    bankLatencyMs: options.bankLatencyMs,
    bankTimeoutRate: options.bankTimeoutRate,
    seed: options.seed,
    postgres: options.postgres,
  };
  let current = await spawnServer({ ...config, port: 0 }, options);
  const port = current.port;
  // A restarted server draws other faults than the one it replaces.
  let incarnation = 0;
  return {
    port,
    clockOffsetMs: current.clockOffsetMs,
    async crashAndRestart() {
      await signalAndWait(current.child, "SIGKILL");
      incarnation++;
      current = await spawnServer({ ...config, port, seed: config.seed + 7919 * incarnation }, options);
    },
    stop: () => signalAndWait(current.child, "SIGTERM"),
  };
}

interface SpawnedServer {
  readonly child: ChildProcess;
  readonly port: number;
  readonly clockOffsetMs: number;
}

function spawnServer(config: ServerProcessConfig, options: ServerProcessOptions): Promise<SpawnedServer> {
  const child = fork(serverMain, [JSON.stringify(config)], {
    // Resolved here, so that the child finds tsx whatever its working directory.
    execArgv: ["--import", import.meta.resolve("tsx")],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    env: { ...process.env, ...options.env },
  });
  return new Promise<SpawnedServer>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the demo server did not start within ${options.startTimeoutMs ?? 30_000} ms`));
    }, options.startTimeoutMs ?? 30_000);
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      reject(new Error(`the demo server exited before listening (${signal ?? `exit status ${code}`})`));
    };
    child.once("exit", onExit);
    child.on("message", (message: ServerProcessMessage) => {
      if (message.kind === "event") {
        options.onEvent(message.service, message.type);
      } else if (message.kind === "bank_timeout") {
        options.onBankTimeout(message.reference);
      } else {
        clearTimeout(timer);
        child.off("exit", onExit);
        resolve({ child, port: message.port, clockOffsetMs: message.clock - Date.now() });
      }
    });
  });
}

function signalAndWait(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve();
  }
  return new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.kill(signal);
  });
}
