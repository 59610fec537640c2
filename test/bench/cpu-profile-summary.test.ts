import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { summarizeBusiestCpuProfile } from "../../bench/cpu-profile-summary.js";

const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 0 });

describe("summarizeBusiestCpuProfile", () => {
  it("counts a package's time for the innermost file of this repo that called it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "profile-"));
    try {
      const root = "file:///repo";
      const profile = {
        nodes: [
          { id: 1, callFrame: frame("(root)", ""), children: [2, 5, 6, 7] },
          { id: 2, callFrame: frame("invoke", `${root}/bench/invoke-in-process.ts`), children: [3] },
          { id: 3, callFrame: frame("claimKey", `${root}/src/server/claim-key.ts`), children: [4] },
          { id: 4, callFrame: frame("toBinary", `${root}/node_modules/@bufbuild/protobuf/dist/esm/to-binary.js`) },
          { id: 5, callFrame: frame("(garbage collector)", "") },
          { id: 6, callFrame: frame("processTicksAndRejections", "node:internal/process/task_queues") },
          { id: 7, callFrame: frame("(idle)", "") },
        ],
        // 3 ms in toBinary under claimKey, 1 ms in claimKey itself, 2 ms GC, 1 ms in Node.js, idle ignored.
        samples: [4, 4, 4, 3, 5, 5, 6, 7],
        timeDeltas: [1000, 1000, 1000, 1000, 1000, 1000, 1000, 5000],
      };
      await writeFile(join(dir, "CPU.1.cpuprofile"), JSON.stringify(profile));
      const summary = await summarizeBusiestCpuProfile(dir, 10);
      expect(summary.busyMs).toBe(7);
      expect(summary.ownFiles.map((f) => [f.name, f.selfMs])).toEqual([
        ["src/server/claim-key.ts", 4],
        ["(garbage collector)", 2],
        ["(no file of ours)", 1],
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
