import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packRepository, repo } from "../examples/example-project.js";

// A real `npm install` of the tarball next to the newest Connect release and
// connect-web, which pins @connectrpc/connect exactly: the tree must hold one
// copy of each package that carries Connect's and protobuf's runtime types.
// Install scripts are skipped (better-sqlite3 would compile for 75 s); the
// tree is what is tested here, not the native build.

const run = promisify(execFile);
const peers = ["@connectrpc/connect", "@connectrpc/connect-node", "@bufbuild/protobuf"];

interface LsNode {
  version?: string;
  dependencies?: Record<string, LsNode>;
}

/** Every version of `name` in an `npm ls --all --json` tree, with the path where it sits. */
function copiesOf(tree: LsNode, name: string, path = ""): string[] {
  return Object.entries(tree.dependencies ?? {}).flatMap(([dep, node]) => [
    ...(dep === name && node.version !== undefined ? [`${path}${dep}@${node.version}`] : []),
    ...copiesOf(node, name, `${path}${dep}>`),
  ]);
}

let packed: { tarball: string; dir: string };
let project: string;
beforeAll(async () => {
  packed = await packRepository();
  project = mkdtempSync(join(tmpdir(), "connect-idempotency-peers-"));
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "user-project", private: true, type: "module" }));
}, 120_000);
afterAll(() => {
  rmSync(project, { recursive: true, force: true });
  rmSync(packed.dir, { recursive: true, force: true });
});

describe("peer dependencies", () => {
  it("declares Connect and protobuf as peers with the ranges the repo tests, not as pinned dependencies", () => {
    const manifest = JSON.parse(readFileSync(join(repo, "package.json"), "utf8"));
    for (const peer of peers) {
      expect(manifest.dependencies[peer], peer).toBeUndefined();
      expect(manifest.peerDependencies[peer], peer).toMatch(/^\^/);
      // The repo's own tests run on the lowest version of each range.
      expect(`^${manifest.devDependencies[peer]}`).toBe(manifest.peerDependencies[peer]);
    }
  });

  it("installs beside Connect 2.3 and connect-web 2.3 without ERESOLVE, with one copy of each peer in the tree", async () => {
    await run(
      "npm",
      [
        "install",
        "--ignore-scripts",
        "--no-audit",
        "--no-fund",
        "--prefer-offline",
        packed.tarball,
        "@connectrpc/connect@2.3.0",
        "@connectrpc/connect-node@2.3.0",
        "@connectrpc/connect-web@2.3.0",
        "@bufbuild/protobuf@^2.17.0",
      ],
      { cwd: project, timeout: 240_000 },
    );
    const { stdout } = await run("npm", ["ls", "--all", "--json"], { cwd: project });
    const tree = JSON.parse(stdout) as LsNode;
    expect(copiesOf(tree, "connect-idempotency")).toEqual(["connect-idempotency@0.1.0"]);
    for (const peer of peers) {
      // npm ls lists a deduplicated dependency under each dependent with the
      // same version; a nested copy would carry another version or sit under
      // its own node_modules, which `npm ls --parseable` shows as a second path.
      const versions = new Set(copiesOf(tree, peer).map((c) => c.slice(c.lastIndexOf("@") + 1)));
      expect([...versions], peer).toEqual([peer === "@bufbuild/protobuf" ? expect.stringMatching(/^2\./) : "2.3.0"]);
    }
    const { stdout: paths } = await run("npm", ["ls", "--all", "--parseable", ...peers], { cwd: project });
    const installed = paths
      .split("\n")
      .filter((p) => peers.some((peer) => p.endsWith(`node_modules/${peer}`)))
      .map((p) => p.slice(project.length + 1));
    expect(installed.sort()).toEqual(peers.map((peer) => `node_modules/${peer}`).sort());
  });
});
