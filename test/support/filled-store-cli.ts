import { afterAll, beforeAll, expect } from "vitest";
import type { IdempotencyStore } from "../../src/store/idempotency-store.js";
import { type BackdateRecords, type FilledStoreServer, startFilledStoreServer } from "./filled-store-server.js";
import { type CliRun, type RunOptions, runCli } from "./run-cli.js";

/** The store an admin CLI test file fills, and the CLI options that name it. */
export interface CliTestStore {
  readonly store: IdempotencyStore;
  /** Appended to every CLI run, such as `["--db", path]`. */
  readonly storeArgs: readonly string[];
  /** Moves records into the past, for the store's records of "three hours ago". */
  readonly backdate: BackdateRecords;
}

/** A test file's filled store server, and the CLI on its store, from `useFilledStoreCli`. */
export interface FilledStoreCli extends FilledStoreServer {
  /** Runs the CLI with the store's options appended; expects exit status `code` (default 0). */
  cli(args: readonly string[], code?: number, options?: RunOptions): Promise<CliRun>;
  /** Runs the CLI with `--json` and the store's options appended, expects success, and parses its stdout. */
  cliJson<T>(args: readonly string[]): Promise<T>;
}

/**
 * Opens the calling test file's store and fills it through
 * `startFilledStoreServer` before the file's tests, and closes the server
 * after them. The server's fields are there from that `beforeAll` on; the
 * CLI runs on the store the file opened. Call it at the top of a file.
 */
export function useFilledStoreCli(open: () => Promise<CliTestStore>): FilledStoreCli {
  let started: { readonly filled: FilledStoreServer; readonly storeArgs: readonly string[] } | undefined;
  beforeAll(async () => {
    const { store, storeArgs, backdate } = await open();
    started = { filled: await startFilledStoreServer(store, backdate), storeArgs };
  });
  afterAll(async () => {
    await started?.filled.finishSlowCall();
    await started?.filled.server.close();
  });
  const current = () => {
    if (started === undefined) {
      throw new Error("the filled store server is used before its beforeAll hook ran");
    }
    return started;
  };
  const cli = async (args: readonly string[], code = 0, options: RunOptions = {}): Promise<CliRun> => {
    const result = await runCli([...args, ...current().storeArgs], options);
    expect(result.code, `${args.join(" ")}\n${result.stderr}`).toBe(code);
    return result;
  };
  return {
    get server() {
      return current().filled.server;
    },
    get keys() {
      return current().filled.keys;
    },
    get freshResponse() {
      return current().filled.freshResponse;
    },
    repeatFresh: () => current().filled.repeatFresh(),
    finishSlowCall: () => current().filled.finishSlowCall(),
    cli,
    cliJson: async <T>(args: readonly string[]) => JSON.parse((await cli([...args, "--json"])).stdout) as T,
  };
}
