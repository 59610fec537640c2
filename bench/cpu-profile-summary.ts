import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

/** Self time of one function in a CPU profile. */
export interface ProfileEntry {
  /** `function (file:line)`. */
  readonly name: string;
  readonly selfMs: number;
  /** Share of the busy (non-idle) time. */
  readonly selfPercent: number;
}

/** Where a process spent its time, from a `.cpuprofile` that `node --cpu-prof` wrote. */
export interface ProfileSummary {
  readonly busyMs: number;
  /** Functions by self time, highest first. */
  readonly functions: readonly ProfileEntry[];
  /** Self time by area: our code, each package, Node.js internals, GC. */
  readonly areas: readonly ProfileEntry[];
  /**
   * Time by file of this repo, callees included: each sample goes to the
   * innermost frame of ours on its stack (`src/server/claim-key.ts`,
   * `bench/invoke-in-process.ts`), so that the packages and Node.js
   * internals a file calls count for it. Samples with no frame of ours
   * (promise jobs resuming in Node.js) are `(no file of ours)`, and garbage
   * collection is `(garbage collector)`.
   */
  readonly ownFiles: readonly ProfileEntry[];
}

interface CpuProfile {
  readonly nodes: readonly {
    readonly id: number;
    readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
    readonly children?: readonly number[];
  }[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/**
 * Summarizes the busiest profile in `dir`. Node.js writes one profile per
 * thread, and tsx runs its module loader in a thread of its own; the busiest
 * is the main thread that served the calls.
 */
export async function summarizeBusiestCpuProfile(dir: string, top: number): Promise<ProfileSummary> {
  const files = (await readdir(dir)).filter((name) => name.endsWith(".cpuprofile"));
  const summaries = await Promise.all(files.map((name) => summarizeCpuProfile(join(dir, name), top)));
  const busiest = summaries.sort((a, b) => b.busyMs - a.busyMs)[0];
  if (busiest === undefined) {
    throw new Error(`no CPU profile in ${dir}`);
  }
  return busiest;
}

/** Sums self time per function and per area, leaving out idle time. */
async function summarizeCpuProfile(path: string, top: number): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(path, "utf8")) as CpuProfile;
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) {
      parents.set(child, node.id);
    }
  }
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  const byOwnFile = new Map<string, number>();
  let busyUs = 0;
  profile.samples.forEach((id, i) => {
    const frame = frames.get(id);
    const us = profile.timeDeltas[i] ?? 0;
    if (frame === undefined || frame.functionName === "(idle)") {
      return;
    }
    busyUs += us;
    const file = frame.url.replace(/^file:\/\//, "").replace(/^.*\/node_modules\//, "");
    const name = `${frame.functionName || "(anonymous)"}${file ? ` (${shortPath(file)}:${frame.lineNumber + 1})` : ""}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
    byArea.set(areaOf(frame.url, frame.functionName), (byArea.get(areaOf(frame.url, frame.functionName)) ?? 0) + us);
    const own = frame.functionName === "(garbage collector)" ? frame.functionName : ownFileOf(id, frames, parents);
    byOwnFile.set(own, (byOwnFile.get(own) ?? 0) + us);
  });
  const ranked = (map: Map<string, number>, limit: number): ProfileEntry[] =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([name, us]) => ({ name, selfMs: us / 1000, selfPercent: busyUs === 0 ? 0 : (100 * us) / busyUs }));
  return {
    busyMs: busyUs / 1000,
    functions: ranked(byFunction, top),
    areas: ranked(byArea, 12),
    ownFiles: ranked(byOwnFile, top),
  };
}

/** The innermost file of this repo on the stack of node `id`. */
function ownFileOf(
  id: number,
  frames: ReadonlyMap<number, { readonly url: string }>,
  parents: ReadonlyMap<number, number>,
): string {
  for (let node: number | undefined = id; node !== undefined; node = parents.get(node)) {
    const url = frames.get(node)?.url ?? "";
    const own = /\/((?:src|bench)\/.+\.ts)$/.exec(url.replace(/^file:\/\//, ""));
    if (own?.[1] !== undefined && !url.includes("/node_modules/")) {
      return own[1];
    }
  }
  return "(no file of ours)";
}

function shortPath(file: string): string {
  const parts = file.split("/");
  return parts.length <= 3 ? file : parts.slice(-3).join("/");
}

function areaOf(url: string, functionName: string): string {
  if (url === "") {
    // (garbage collector), (program), and native functions without a script.
    return functionName.startsWith("(") ? functionName : "native";
  }
  const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg?.[1] !== undefined) {
    return pkg[1];
  }
  if (url.startsWith("node:")) {
    return "node internals";
  }
  const local = /\/(src|gen|bench|test)\//.exec(url);
  return local?.[1] === undefined ? url : `${local[1]}/ (this repo)`;
}
