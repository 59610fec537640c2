import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { promisify } from "node:util";

// A user's project made from one of examples/: the folder copied as it is,
// with the `npm pack` tarball unpacked as node_modules/connect-idempotency.
// Every other package is linked from this repo's node_modules instead of
// installed, since installing compiles better-sqlite3 again (about 75 s
// here) and tests nothing of ours; test/package/peer-dependencies.test.ts
// runs a real `npm install` of the tarball for the dependency tree.

const execFileAsync = promisify(execFile);
export const repo = resolve(import.meta.dirname, "../..");

/** What a command printed, and its exit status. */
export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Packs the repository as `npm pack` does (building it first) and returns the tarball's path. */
export async function packRepository(): Promise<{ tarball: string; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), "connect-idempotency-tarball-"));
  const { stdout } = await execFileAsync("npm", ["pack", "--json", "--pack-destination", dir], { cwd: repo });
  const packed = JSON.parse(stdout.slice(stdout.indexOf("["))) as { filename: string }[];
  return { tarball: join(dir, packed[0]!.filename), dir };
}

/** Options of `createExampleProject`. */
export interface ExampleProjectOptions {
  /** Links a package name to another folder of the repo's node_modules (`{ express: "express4" }`). */
  readonly aliases?: Readonly<Record<string, string>>;
}

/** A copy of an example with the package installed, ready to run its scripts. */
export interface ExampleProject {
  readonly dir: string;
  /** Runs a file of `node_modules/.bin` (buf, tsc, tsx, connect-idempotency, ...), or `node`, in the project. */
  bin(name: string, args: readonly string[], env?: Record<string, string>): Promise<CommandResult>;
  /** Starts `tsx <file>` and resolves with the URL once it prints `listening on <url>`. */
  startServer(file: string): Promise<RunningServer>;
  remove(): void;
}

/** A server process of an example. */
export interface RunningServer {
  readonly url: string;
  /** Everything it printed so far. */
  output(): string;
  stop(): Promise<void>;
}

const ourBins = {
  "connect-idempotency": "dist/src/cli/main.js",
  "protoc-gen-connect-idempotency": "dist/src/codegen/protoc-gen-connect-idempotency.js",
};
const toolBins = ["buf", "protoc-gen-es", "tsc", "tsx"];

/** Copies `examples/<name>` to a temp folder and installs the tarball and the repo's packages in it. */
export async function createExampleProject(
  name: string,
  tarball: string,
  options: ExampleProjectOptions = {},
): Promise<ExampleProject> {
  const dir = mkdtempSync(join(tmpdir(), `connect-idempotency-example-${name}-`));
  cpSync(join(repo, "examples", name), dir, {
    recursive: true,
    filter: (src) => !["node_modules", "gen"].includes(basename(src)) && !/\.db(-\w+)?$/.test(src),
  });
  const modules = join(dir, "node_modules");
  const pkg = join(modules, "connect-idempotency");
  mkdirSync(pkg, { recursive: true });
  await execFileAsync("tar", ["-xzf", tarball, "-C", pkg, "--strip-components=1"]);
  const aliases = options.aliases ?? {};
  const aliased = new Set(Object.values(aliases));
  for (const entry of readdirSync(join(repo, "node_modules"))) {
    if (entry === "connect-idempotency" || entry.startsWith(".") || aliased.has(entry) || entry in aliases) continue;
    symlinkSync(join(repo, "node_modules", entry), join(modules, entry));
  }
  for (const [as, target] of Object.entries(aliases)) {
    symlinkSync(join(repo, "node_modules", target), join(modules, as));
  }
  const bin = join(modules, ".bin");
  mkdirSync(bin);
  for (const tool of toolBins) symlinkSync(join(repo, "node_modules/.bin", tool), join(bin, tool));
  for (const [binName, path] of Object.entries(ourBins)) {
    chmodSync(join(pkg, path), 0o755);
    symlinkSync(join(pkg, path), join(bin, binName));
  }
  const env = (extra: Record<string, string> = {}) => ({
    ...process.env,
    PATH: `${bin}:${process.env.PATH}`,
    ...extra,
  });

  return {
    dir,
    bin: (binName, args, extra) =>
      execFileAsync(binName === "node" ? process.execPath : join(bin, binName), [...args], { cwd: dir, env: env(extra), timeout: 120_000 }).then(
        ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
        (error: { code?: number; stdout?: string; stderr?: string }) => {
          if (typeof error.code !== "number") throw error;
          return { code: error.code, stdout: error.stdout ?? "", stderr: error.stderr ?? "" };
        },
      ),
    startServer: (file) => startServer(join(bin, "tsx"), file, dir, env({ PORT: "0" })),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

function startServer(tsx: string, file: string, cwd: string, env: NodeJS.ProcessEnv): Promise<RunningServer> {
  const child: ChildProcess = spawn(tsx, [file], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
  const exited = new Promise<void>((ok) => child.once("exit", () => ok()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
  };
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => {
      void stop();
      fail(new Error(`${file} did not print "listening on" within 30 s:\n${output}`));
    }, 30_000);
    child.stdout!.on("data", () => {
      const url = /listening on (http:\/\/\S+)/.exec(output)?.[1];
      if (url !== undefined) {
        clearTimeout(timer);
        ok({ url, output: () => output, stop });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`${file} exited with ${code} before listening:\n${output}`));
    });
  });
}

/** The files of a folder, relative to it, recursively and sorted. */
export function listFiles(dir: string, prefix = ""): string[] {
  return readdirSync(join(dir, prefix), { withFileTypes: true })
    .flatMap((entry) =>
      entry.isDirectory() ? listFiles(dir, join(prefix, entry.name)) : [join(prefix, entry.name)],
    )
    .sort();
}

/** The first fenced block of `lang` after the line containing `marker` in a Markdown file. */
export function fencedBlockAfter(markdownPath: string, marker: string, lang: string): string {
  const text = readFileSync(markdownPath, "utf8");
  const at = text.indexOf(marker);
  if (at < 0) throw new Error(`${marker} not found in ${markdownPath}`);
  const open = text.indexOf("```" + lang + "\n", at);
  const start = open + 3 + lang.length + 1;
  return text.slice(start, text.indexOf("\n```", start) + 1);
}
