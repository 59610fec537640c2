import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The methods a child process offers its parent: each takes one JSON value and resolves to one. */
export type ChildApi = { [method: string]: (params: never) => Promise<unknown> };

/** A child process seen from the parent: call its methods, or wait for it to exit. */
export interface BenchChild<Api extends ChildApi> {
  /** Calls one method in the child and resolves to its result; rejects with the child's error. */
  call<M extends keyof Api & string>(method: M, ...params: Parameters<Api[M]>): ReturnType<Api[M]>;
  /** Asks the child to stop through `method`, then waits for the process to exit. */
  stop(method: keyof Api & string): Promise<void>;
  /** Kills the process without asking; for cleanup after an error. */
  kill(): void;
  /** The process ID, to find the child in `top` or in profiles. */
  readonly pid: number;
}

interface CallMessage {
  readonly id: number;
  readonly method: string;
  readonly params: unknown;
}

interface ReplyMessage {
  readonly id: number;
  readonly result?: unknown;
  readonly error?: string;
}

/** Options for starting a child. */
export interface ForkChildOptions {
  /** Extra Node.js flags, such as `--cpu-prof`. */
  readonly execArgv?: readonly string[];
  /** Runs the child, all its threads included, on this CPU only (through `taskset`). */
  readonly cpu?: number;
}

/**
 * Starts a TypeScript module as a child process (through tsx) and talks to it
 * over the IPC channel. The bench keeps the server and the load generator in
 * separate processes so that neither steals the other's event loop.
 */
export function forkChild<Api extends ChildApi>(moduleUrl: URL, options: ForkChildOptions = {}): BenchChild<Api> {
  const nodeArgs = ["--import", "tsx", ...(options.execArgv ?? [])];
  // taskset sets the affinity and then execs Node.js in the same process, so
  // the pid and the IPC channel stay the same, and every thread Node.js
  // starts (GC, compiler, libuv) inherits the affinity.
  const child = fork(fileURLToPath(moduleUrl), [], {
    ...(options.cpu === undefined
      ? { execArgv: nodeArgs }
      : { execPath: "taskset", execArgv: ["-c", String(options.cpu), process.execPath, ...nodeArgs] }),
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (reason: Error) => void }>();
  let nextId = 1;
  let exitError: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exitError = new Error(`bench child ${moduleUrl.pathname} exited (code ${code}, signal ${signal})`);
      for (const { reject } of pending.values()) {
        reject(exitError);
      }
      pending.clear();
      resolve();
    });
  });
  child.on("message", (message: ReplyMessage) => {
    const waiter = pending.get(message.id);
    if (waiter === undefined) {
      return;
    }
    pending.delete(message.id);
    if (message.error !== undefined) {
      waiter.reject(new Error(message.error));
    } else {
      waiter.resolve(message.result);
    }
  });
  const call = (method: string, params: unknown): Promise<unknown> => {
    if (exitError !== undefined) {
      return Promise.reject(exitError);
    }
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      const message: CallMessage = { id, method, params };
      child.send(message);
    });
  };
  return {
    pid: child.pid ?? -1,
    // The IPC channel carries JSON; the Api type parameter is the contract both sides are written against.
    call: ((method: string, params?: unknown) => call(method, params)) as unknown as BenchChild<Api>["call"],
    async stop(method) {
      if (exitError === undefined) {
        await call(method, undefined).catch(() => undefined);
      }
      await exited;
    },
    kill() {
      if (exitError === undefined) {
        child.kill("SIGKILL");
      }
    },
  };
}

/**
 * Serves `api` to the parent process. A method that throws sends the error
 * message back; the parent's call rejects with it. The process exits when the
 * parent goes away, so an aborted bench leaves no servers behind.
 */
export function serveParent(api: ChildApi): void {
  const send = process.send?.bind(process);
  if (send === undefined) {
    throw new Error("this module runs as a child of bench/main.ts");
  }
  process.on("disconnect", () => process.exit(0));
  process.on("message", (message: CallMessage) => {
    const method = api[message.method];
    const reply = (body: Omit<ReplyMessage, "id">) => send({ id: message.id, ...body });
    if (method === undefined) {
      reply({ error: `unknown method ${message.method}` });
      return;
    }
    method(message.params as never).then(
      (result) => reply({ result: result ?? null }),
      (error: unknown) => reply({ error: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
    );
  });
}
