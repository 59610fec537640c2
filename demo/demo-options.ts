import { existsSync } from "node:fs";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";

/** What `npm start` was asked to do. */
export interface DemoOptions {
  /** How many payments the load client asks for. */
  readonly payments: number;
  /** How many calls are in flight at once. */
  readonly concurrency: number;
  /** Share of calls whose response the network drops after the server processed them. */
  readonly dropRate: number;
  /** Share of calls whose connection the network resets. */
  readonly resetRate: number;
  /** Seeds the network's faults, the payments and the moment of the crash. */
  readonly seed: number;
  /** The folder of the SQLite files. */
  readonly dataDir: string;
  /** Only run the server on `port`, for other clients. */
  readonly serve: boolean;
  /** The port of `--serve`. */
  readonly port: number;
  /** Serve the checkout page (`--web`) on `port`, its RPC edge on the next free port. */
  readonly web: boolean;
  /** False with `--no-idempotency`: the interceptors are off, the client still retries. */
  readonly idempotency: boolean;
  /** False with `--no-crash`: the server is not killed during the run. */
  readonly crash: boolean;
  /** Share of charges whose answer the link to the bank loses after the bank charged. */
  readonly bankTimeoutRate: number;
  /** Share of calls with a client deadline shorter than the handler takes. */
  readonly deadlineRate: number;
  /** False with `--no-stall`: the store is not stalled during the run. */
  readonly stall: boolean;
  /** The store of both services: SQLite files in `dataDir`, or PostgreSQL at `postgres`. */
  readonly store: "sqlite" | "postgres";
  /** The database of `--store postgres`. */
  readonly postgres: string;
  /** Keep the PostgreSQL schema of the run instead of dropping it. */
  readonly keep: boolean;
  /** The clock skew of the second server process, in seconds; 0 for none. */
  readonly skewSeconds: number;
  /** libfaketime's library, set when `skewSeconds` is not 0. */
  readonly libfaketime: string | undefined;
}

/** Where the parser writes, so that tests can capture it. */
export interface DemoOutput {
  readonly writeOut: (text: string) => void;
  readonly writeErr: (text: string) => void;
}

/**
 * What the command line asks for: options to run with, or an exit status
 * after `--help` (0) or a bad flag (2), whose text was already written.
 */
export type ParsedDemoArgs =
  | { readonly kind: "run"; readonly options: DemoOptions }
  | { readonly kind: "exit"; readonly status: number };

/** The default data folder, relative to the working directory. */
export const defaultDataDir = ".data/demo";

/** The default database of `--store postgres`: the test suite's. */
export const defaultPostgresUrl = "postgres://postgres@127.0.0.1:5432/test";

// Where distributions install libfaketime; LIBFAKETIME names another place.
const libfaketimePaths = [
  "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
  "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
  "/usr/lib/faketime/libfaketime.so.1",
  "/usr/local/lib/faketime/libfaketime.so.1",
];

const usageLine = "Usage: npm start -- [options]";
const helpHint = "Run 'npm start -- --help' to see all options.";

/**
 * Parses the demo's flags (`argv` without the node and script paths). A bad
 * flag yields one error line, the usage line and exit status 2.
 */
export function parseDemoArgs(argv: readonly string[], output: DemoOutput): ParsedDemoArgs {
  const program = createDemoCommand(output);
  try {
    program.parse([...argv], { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.help") {
        return { kind: "exit", status: 0 };
      }
      output.writeErr(`${usageLine}\n${helpHint}\n`);
      return { kind: "exit", status: 2 };
    }
    throw err;
  }
  const flags = program.opts<{
    payments: number;
    concurrency: number;
    dropRate: number;
    resetRate: number;
    seed: number | undefined;
    dataDir: string;
    serve: boolean | undefined;
    web: boolean | undefined;
    port: number;
    idempotency: boolean;
    crash: boolean;
    bankTimeoutRate: number;
    deadlineRate: number;
    stall: boolean;
    store: "sqlite" | "postgres";
    postgres: string | undefined;
    keep: boolean | undefined;
    skew: number | undefined;
  }>();
  const refuse = (message: string): ParsedDemoArgs => {
    output.writeErr(`error: ${message}\n${usageLine}\n${helpHint}\n`);
    return { kind: "exit", status: 2 };
  };
  if (flags.dropRate + flags.resetRate >= 1) {
    return refuse(`--drop-rate plus --reset-rate must stay below 1, got ${flags.dropRate + flags.resetRate}`);
  }
  const postgres = flags.store === "postgres";
  for (const [flag, given] of [
    ["--postgres", flags.postgres],
    ["--keep", flags.keep],
    ["--skew", flags.skew],
  ] as const) {
    if (given !== undefined && !postgres) {
      return refuse(
        flag === "--skew"
          ? "--skew needs --store postgres: SQLite times leases by each process's own clock, which must be the machine's one clock, so a skewed process there shows a misconfiguration, not a guarantee"
          : `${flag} needs --store postgres`,
      );
    }
  }
  if (postgres && (flags.serve === true || flags.web === true)) {
    return refuse(`--store postgres runs the load; --${flags.serve === true ? "serve" : "web"} uses the SQLite files`);
  }
  let libfaketime: string | undefined;
  if (flags.skew !== undefined) {
    libfaketime = [
      process.env.LIBFAKETIME ?? "",
      ...(process.env.LIBFAKETIME === undefined ? libfaketimePaths : []),
    ].find((path) => path !== "" && existsSync(path));
    if (libfaketime === undefined) {
      return refuse(
        `--skew needs libfaketime, which is not installed (looked for ${process.env.LIBFAKETIME ?? libfaketimePaths.join(", ")}); ` +
          "install it (apt-get install faketime) or set LIBFAKETIME to its libfaketime.so.1",
      );
    }
  }
  return {
    kind: "run",
    options: {
      payments: flags.payments,
      concurrency: flags.concurrency,
      dropRate: flags.dropRate,
      resetRate: flags.resetRate,
      // An unseeded run still gets a seed, printed in the report, to replay it.
      seed: flags.seed ?? Math.floor(Math.random() * 1_000_000),
      dataDir: flags.dataDir,
      serve: flags.serve === true,
      web: flags.web === true,
      port: flags.port,
      idempotency: flags.idempotency,
      crash: flags.crash,
      bankTimeoutRate: flags.bankTimeoutRate,
      deadlineRate: flags.deadlineRate,
      stall: flags.stall,
      store: flags.store,
      postgres: flags.postgres ?? defaultPostgresUrl,
      keep: flags.keep === true,
      skewSeconds: flags.skew ?? 0,
      libfaketime,
    },
  };
}

function createDemoCommand(output: DemoOutput): Command {
  return new Command("npm start --")
    .usage("[options]")
    .description(
      "Sends payments through the generated client to two server processes over a hostile network (dropped " +
        "responses, reset connections, delays, bank timeouts after charging, short client deadlines, one SIGKILL " +
        "of a server, one store stall longer than the lease) and reports duplicates and lost payments.",
    )
    .addOption(new Option("-n, --payments <count>", "payments to ask for").default(2000).argParser(positiveInteger))
    .addOption(
      new Option("-c, --concurrency <count>", "calls in flight at once").default(32).argParser(positiveInteger),
    )
    .addOption(
      new Option("--drop-rate <share>", "share of responses dropped after the server processed the call")
        .default(0.1)
        .argParser(share),
    )
    .addOption(
      new Option("--reset-rate <share>", "share of calls whose connection is reset").default(0.05).argParser(share),
    )
    .addOption(
      new Option("--seed <integer>", "seed of the faults, payments and crash (default: random)").argParser(seed),
    )
    .addOption(new Option("--data-dir <folder>", "folder of the SQLite files").default(defaultDataDir))
    .addOption(new Option("--serve", "only run the server, for other clients such as buf curl"))
    .addOption(
      new Option("--web", "serve a checkout page over HTTP/1.1 with CORS and a flaky network, for a browser").conflicts(
        "serve",
      ),
    )
    .addOption(
      new Option("--port <port>", "port of --serve and --web (0 picks a free one)").default(8080).argParser(port),
    )
    .addOption(new Option("--no-idempotency", "turn the idempotency interceptors off (the client still retries)"))
    .addOption(new Option("--no-crash", "do not kill a server during the run"))
    .addOption(
      new Option("--bank-timeout-rate <share>", "share of charges whose answer is lost after the bank charged")
        .default(0.03)
        .argParser(share),
    )
    .addOption(
      new Option("--deadline-rate <share>", "share of calls with a client deadline shorter than the handler takes")
        .default(0.03)
        .argParser(share),
    )
    .addOption(new Option("--no-stall", "do not stall the store during the run"))
    .addOption(new Option("--store <kind>", "store of both services").choices(["sqlite", "postgres"]).default("sqlite"))
    .addOption(
      new Option("--postgres <url>", `database of --store postgres (default: "${defaultPostgresUrl}")`).argParser(
        postgresUrl,
      ),
    )
    .addOption(new Option("--keep", "keep the PostgreSQL schema of the run (default: dropped at the end)"))
    .addOption(
      new Option(
        "--skew <seconds>",
        "skew the clock of the second server process by libfaketime (needs --store postgres)",
      ).argParser(skew),
    )
    .helpOption("-h, --help", "show this help")
    .allowExcessArguments(false)
    .exitOverride()
    .configureOutput({
      writeOut: output.writeOut,
      writeErr: output.writeErr,
      // Commander's messages already start with "error:"; one line, then our usage.
      outputError: (message, write) => write(`${message.trimEnd()}\n`),
    });
}

function positiveInteger(value: string): number {
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(parsed) || parsed < 1) {
    throw new InvalidArgumentError("must be a positive integer.");
  }
  return parsed;
}

function share(value: string): number {
  const parsed = Number(value);
  if (value.trim() === "" || !Number.isFinite(parsed) || parsed < 0 || parsed >= 1) {
    throw new InvalidArgumentError("must be a number from 0 up to (not including) 1.");
  }
  return parsed;
}

function seed(value: string): number {
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(parsed)) {
    throw new InvalidArgumentError("must be a non-negative integer.");
  }
  return parsed;
}

function postgresUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError("must be a URL such as postgres://user@host:5432/database.");
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new InvalidArgumentError("must be a URL such as postgres://user@host:5432/database.");
  }
  return value;
}

function skew(value: string): number {
  const parsed = Number(value);
  if (!/^[+-]?\d+$/.test(value) || parsed === 0 || Math.abs(parsed) > 86_400) {
    throw new InvalidArgumentError("must be a whole number of seconds from -86400 to 86400, not 0.");
  }
  return parsed;
}

function port(value: string): number {
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || parsed > 65535) {
    throw new InvalidArgumentError("must be a port from 0 to 65535.");
  }
  return parsed;
}
