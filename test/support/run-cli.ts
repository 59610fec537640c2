import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** What one run of a command printed and how it ended. */
export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of `runCli` and `runCommand`. */
export interface RunOptions {
  /** The working directory; default the repository. */
  readonly cwd?: string;
  /** Written to stdin, which is then closed. */
  readonly input?: string;
}

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const main = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
const tsx = fileURLToPath(new URL("../../node_modules/tsx/dist/loader.mjs", import.meta.url));
const cliCommand = [process.execPath, "--import", tsx, main];

/**
 * Runs `connect-idempotency` as a child process (`node --import tsx
 * src/cli/main.ts ...args`); its stdin is a pipe, never a terminal.
 */
export function runCli(args: readonly string[], options: RunOptions = {}): Promise<CliRun> {
  const [node, ...nodeArgs] = cliCommand as [string, ...string[]];
  return runCommand(node, [...nodeArgs, ...args], options);
}

/**
 * Runs `connect-idempotency` on a pseudo-terminal (util-linux `script`), as
 * a person at a terminal would, typing `options.input`. Everything the
 * program writes arrives on stdout. Arguments must not need shell quoting.
 */
export function runCliInTerminal(args: readonly string[], options: RunOptions = {}): Promise<CliRun> {
  return runCommand("script", ["-qec", [...cliCommand, ...args].join(" "), "/dev/null"], options);
}

/** Runs a program as a child process and collects its output. */
export function runCommand(command: string, args: readonly string[], options: RunOptions = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd ?? repoRoot, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? "");
  });
}
