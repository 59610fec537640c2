import { escapeControls } from "./escape-text.js";
import { operatorMessage } from "./operator-message.js";

/** The exit status of a command the operator can correct: a missing file, a bad URL, an unknown key. */
const usageExitCode = 2;

/** An error whose message is meant for the operator, with the exit status to end with. */
export interface CliError extends Error {
  readonly exitCode: number;
}

/** Creates an error the operator can correct; the command exits with status 2. */
export function createCliError(message: string, options?: { cause?: unknown }): CliError {
  return Object.assign(new Error(message, options), { exitCode: usageExitCode });
}

/**
 * Runs a command action and reports a failure as one line on stderr:
 * exit status 2 for errors from `createCliError`, 1 for anything else.
 */
export function runCliAction<A extends unknown[]>(
  action: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args) => {
    try {
      await action(...args);
    } catch (error) {
      const exitCode = isCliError(error) ? error.exitCode : 1;
      const message = operatorMessage(error);
      process.stderr.write(`connect-idempotency: ${escapeControls(message.split("\n")[0] ?? "")}\n`);
      process.exitCode = exitCode;
    }
  };
}

function isCliError(error: unknown): error is CliError {
  return error instanceof Error && typeof (error as Partial<CliError>).exitCode === "number";
}
