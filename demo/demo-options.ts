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
  }>();
  if (flags.dropRate + flags.resetRate >= 1) {
    output.writeErr(
      `error: --drop-rate plus --reset-rate must stay below 1, got ${flags.dropRate + flags.resetRate}\n${usageLine}\n${helpHint}\n`,
    );
    return { kind: "exit", status: 2 };
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
    },
  };
}

function createDemoCommand(output: DemoOutput): Command {
  return new Command("npm start --")
    .usage("[options]")
    .description(
      "Sends payments through the generated client over a hostile network (dropped responses, " +
        "reset connections, delays, one SIGKILL of the server) and reports duplicates and lost payments.",
    )
    .addOption(new Option("-n, --payments <count>", "payments to ask for").default(2000).argParser(positiveInteger))
    .addOption(new Option("-c, --concurrency <count>", "calls in flight at once").default(32).argParser(positiveInteger))
    .addOption(
      new Option("--drop-rate <share>", "share of responses dropped after the server processed the call")
        .default(0.1)
        .argParser(share),
    )
    .addOption(new Option("--reset-rate <share>", "share of calls whose connection is reset").default(0.05).argParser(share))
    .addOption(new Option("--seed <integer>", "seed of the faults, payments and crash (default: random)").argParser(seed))
    .addOption(new Option("--data-dir <folder>", "folder of the SQLite files").default(defaultDataDir))
    .addOption(new Option("--serve", "only run the server, for other clients such as buf curl"))
    .addOption(
      new Option("--web", "serve a checkout page over HTTP/1.1 with CORS and a flaky network, for a browser").conflicts("serve"),
    )
    .addOption(new Option("--port <port>", "port of --serve and --web (0 picks a free one)").default(8080).argParser(port))
    .addOption(new Option("--no-idempotency", "turn the idempotency interceptors off (the client still retries)"))
    .addOption(new Option("--no-crash", "do not kill the server during the run"))
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

function port(value: string): number {
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || parsed > 65535) {
    throw new InvalidArgumentError("must be a port from 0 to 65535.");
  }
  return parsed;
}
