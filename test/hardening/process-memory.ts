import { readFileSync } from "node:fs";

/** A process's memory as the kernel reports it, in MiB. */
export interface ProcessMemory {
  /** Resident set size now (VmRSS). */
  readonly rssMb: number;
  /** The highest resident set size since the process started (VmHWM). */
  readonly peakRssMb: number;
}

/** Reads VmRSS and VmHWM of a process from `/proc/<pid>/status` (Linux). */
export function readProcessMemory(pid: number): ProcessMemory {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string): number => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status);
    if (match === null) {
      throw new Error(`no ${field} in /proc/${pid}/status`);
    }
    return Number(match[1]);
  };
  return { rssMb: Math.round(kb("VmRSS") / 1024), peakRssMb: Math.round(kb("VmHWM") / 1024) };
}
