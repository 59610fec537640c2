import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** How a finished demo process ended. */
export interface DemoExit {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The repository root, where `demo/main.ts` lives. */
export const repoRoot = new URL("../../", import.meta.url).pathname;

/** Starts `node --import tsx demo/main.ts <args>` in the repository root, without a TTY, with `env` added to the environment. */
export function spawnDemo(args: readonly string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", "demo/main.ts", ...args], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
}

/** Runs the demo to its end and collects its output. */
export function runDemoProcess(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<DemoExit> {
  const child = spawnDemo(args, env);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (status) => resolve({ status, stdout, stderr }));
  });
}

/** A temporary data folder, removed by `remove()`. */
export function createTempDataDir(): { readonly path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), "demo-test-"));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** A figure of the report, such as `duplicates`, as a number. */
export function reportFigure(report: string, label: string): number {
  const match = new RegExp(`^\\s+${label}\\s+([\\d,]+)`, "m").exec(report);
  if (match === null) {
    throw new Error(`no "${label}" in the report:\n${report}`);
  }
  return Number(match[1]!.replaceAll(",", ""));
}
