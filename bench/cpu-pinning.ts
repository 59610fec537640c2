import { execFileSync } from "node:child_process";

/** Which CPU each kind of bench process runs on. */
export interface CpuPinning {
  /** Server, store-alone and layer-alone processes: the side whose CPU per call is measured. */
  readonly serverCpu: number;
  /** The load generator. */
  readonly loadCpu: number;
}

/** The pinning the bench will use, or why it runs unpinned. */
export type CpuPinningPlan =
  | { readonly pinned: true; readonly pinning: CpuPinning }
  | { readonly pinned: false; readonly reason: string };

/**
 * Pins the server side to one CPU and the load generator to another with
 * `taskset`, so that they do not compete for the same core and a scenario's
 * throughput reflects the server's CPU time per call. Falls back to no
 * pinning, with the reason, when `taskset` is missing or this process may
 * use fewer than two CPUs.
 */
export function planCpuPinning(): CpuPinningPlan {
  let output: string;
  try {
    output = execFileSync("taskset", ["-cp", String(process.pid)], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
  } catch {
    return { pinned: false, reason: "taskset is not available" };
  }
  // "pid 123's current affinity list: 0-1,4"
  const cpus = parseCpuList(output.slice(output.lastIndexOf(":") + 1));
  // The last two allowed CPUs; CPU 0 often takes more interrupts, so the server gets the higher one.
  const loadCpu = cpus.at(-2);
  const serverCpu = cpus.at(-1);
  if (loadCpu === undefined || serverCpu === undefined) {
    return { pinned: false, reason: `this process may use ${cpus.length} CPU(s); pinning needs two` };
  }
  return { pinned: true, pinning: { loadCpu, serverCpu } };
}

/** `0-2,5` as [0, 1, 2, 5]. */
function parseCpuList(text: string): number[] {
  return text
    .trim()
    .split(",")
    .filter((part) => part.length > 0)
    .flatMap((part) => {
      const [from, to] = part.split("-").map(Number);
      if (from === undefined || !Number.isInteger(from)) {
        return [];
      }
      const last = to === undefined ? from : to;
      return Array.from({ length: Math.max(0, last - from + 1) }, (_, i) => from + i);
    });
}
