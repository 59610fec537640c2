import { type ChildProcess, execFile, spawn } from "node:child_process";
import {
  chmodSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { promisify } from "node:util";

// A user's project made from one of examples/: the folder copied as it is,
// with the `npm pack` tarball as node_modules/connect-idempotency.
// `createExampleProject` links every other package from this repo's
// node_modules instead of installing it (fast, and the versions the repo
// tests); `installExampleProject` runs a real `npm install` without install
// scripts, for the dependency tree and other versions of the peers.

const execFileAsync = promisify(execFile);
export const repo = resolve(import.meta.dirname, "../..");

/** What a command printed, and its exit status. */
export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** What `packRepository` made. */
export interface PackedRepository {
  readonly tarball: string;
  /** The temp folder holding the tarball, for the caller to remove. */
  readonly dir: string;
  /** What `npm pack --json` reported: the files in the tarball and its sizes. */
  readonly files: readonly string[];
  readonly size: number;
  readonly unpackedSize: number;
}

/**
 * Packs the repository as `npm pack` does (its prepack builds dist/) and
 * returns the tarball. Test files run in parallel: a lock keeps two of them
 * from rebuilding dist/ while the other packs it.
 */
export async function packRepository(): Promise<PackedRepository> {
  const dir = mkdtempSync(join(tmpdir(), "connect-idempotency-tarball-"));
  const stdout = await withPackLock(async () => {
    const packed = await execFileAsync("npm", ["pack", "--json", "--pack-destination", dir], { cwd: repo });
    return packed.stdout;
  });
  const [report] = JSON.parse(stdout.slice(stdout.indexOf("["))) as {
    filename: string;
    files: { path: string }[];
    size: number;
    unpackedSize: number;
  }[];
  return {
    tarball: join(dir, report!.filename),
    dir,
    files: report!.files.map((f) => f.path),
    size: report!.size,
    unpackedSize: report!.unpackedSize,
  };
}

async function withPackLock<T>(work: () => Promise<T>): Promise<T> {
  const lock = join(repo, ".data/npm-pack.lock");
  mkdirSync(join(repo, ".data"), { recursive: true });
  const deadline = Date.now() + 300_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      // A lock older than two minutes belongs to a test run that was killed.
      const held = statSync(lock, { throwIfNoEntry: false });
      if (held !== undefined && Date.now() - held.mtimeMs > 120_000) rmSync(lock, { force: true, recursive: true });
      if (Date.now() > deadline) throw new Error(`${lock} held for 5 minutes`);
      await new Promise((ok) => setTimeout(ok, 200));
    }
  }
  try {
    return await work();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Options of `createExampleProject`. */
export interface ExampleProjectOptions {
  /** Links a package name to another folder of the repo's node_modules (`{ express: "express4" }`). */
  readonly aliases?: Readonly<Record<string, string>>;
}

/** A copy of an example with the package installed, ready to run its scripts. */
export interface ExampleProject {
  readonly dir: string;
  /** Runs a file of `node_modules/.bin` (buf, tsc, tsx, connect-idempotency, ...), `node` or `npm`, in the project. */
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
  return projectIn(dir);
}

/**
 * Copies `examples/<name>` and installs it with a real `npm install` of the
 * tarball and `packages` (from the registry, or npm's cache), as a user
 * would. Install scripts are skipped and better-sqlite3's addon is copied
 * from this repo (the same version, built for this Node), so that nothing
 * compiles for 75 s.
 */
export async function installExampleProject(
  name: string,
  tarball: string,
  packages: readonly string[],
): Promise<ExampleProject> {
  const dir = mkdtempSync(join(tmpdir(), `connect-idempotency-install-${name}-`));
  cpSync(join(repo, "examples", name), dir, {
    recursive: true,
    filter: (src) => !["node_modules", "gen"].includes(basename(src)) && !/\.db(-\w+)?$/.test(src),
  });
  await execFileAsync(
    "npm",
    ["install", "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund", tarball, ...packages],
    { cwd: dir, timeout: 240_000 },
  );
  cpSync(join(repo, "node_modules/better-sqlite3/build"), join(dir, "node_modules/better-sqlite3/build"), {
    recursive: true,
  });
  return projectIn(dir);
}

function projectIn(dir: string): ExampleProject {
  const bin = join(dir, "node_modules/.bin");
  const env = (extra: Record<string, string> = {}) => ({
    ...process.env,
    PATH: `${bin}:${process.env.PATH}`,
    ...extra,
  });
  return {
    dir,
    bin: (binName, args, extra) =>
      execFileAsync(binName === "node" ? process.execPath : binName === "npm" ? "npm" : join(bin, binName), [...args], {
        cwd: dir,
        env: env(extra),
        timeout: 120_000,
      }).then(
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
    .flatMap((entry) => (entry.isDirectory() ? listFiles(dir, join(prefix, entry.name)) : [join(prefix, entry.name)]))
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
