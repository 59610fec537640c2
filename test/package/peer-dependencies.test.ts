import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ExampleProject, installExampleProject, packRepository, repo } from "../examples/example-project.js";

// The quick start installed for real (`npm install` of the tarball) beside
// the newest Connect release and connect-web, which pins
// @connectrpc/connect exactly: one copy of each peer in the tree, and the
// quick start still runs on it.

const peers = ["@connectrpc/connect", "@connectrpc/connect-node", "@bufbuild/protobuf"];
const newest = "2.3.0";

interface LsNode {
  version?: string;
  dependencies?: Record<string, LsNode>;
}

/** Every `name@version` of `name` in an `npm ls --all --json` tree, prefixed with its path. */
function copiesOf(tree: LsNode, name: string, path = ""): string[] {
  return Object.entries(tree.dependencies ?? {}).flatMap(([dep, node]) => [
    ...(dep === name && node.version !== undefined ? [`${path}${dep}@${node.version}`] : []),
    ...copiesOf(node, name, `${path}${dep}>`),
  ]);
}

let packed: { tarball: string; dir: string };
let project: ExampleProject;
beforeAll(async () => {
  packed = await packRepository();
  project = await installExampleProject("quickstart", packed.tarball, [
    `@connectrpc/connect@${newest}`,
    `@connectrpc/connect-node@${newest}`,
    `@connectrpc/connect-web@${newest}`,
  ]);
}, 300_000);
afterAll(() => {
  project?.remove();
  if (packed !== undefined) rmSync(packed.dir, { recursive: true, force: true });
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

  it(`installs beside Connect ${newest} and connect-web ${newest} with one copy of each peer in what the application runs (npm ls --omit=dev)`, async () => {
    // What the application runs: the tree without devDependencies. The dev
    // tree has one more protobuf, 2.13, which protoc-gen-es 2.13 pins for itself.
    const all = JSON.parse((await project.bin("npm", ["ls", "--all", "--json"])).stdout) as LsNode;
    expect(copiesOf(all, "@bufbuild/protobuf").filter((c) => !c.endsWith("@2.17.0"))).toEqual([
      "@bufbuild/protoc-gen-es>@bufbuild/protobuf@2.13.0",
      "@bufbuild/protoc-gen-es>@bufbuild/protoplugin>@bufbuild/protobuf@2.13.0",
    ]);
    const listed = await project.bin("npm", ["ls", "--all", "--json", "--omit=dev"]);
    const tree = JSON.parse(listed.stdout) as LsNode;
    expect(copiesOf(tree, "connect-idempotency")).toEqual(["connect-idempotency@0.2.0"]);
    for (const peer of peers) {
      // A deduplicated dependency is listed under each dependent with the
      // same version; a nested copy carries another version.
      const versions = new Set(copiesOf(tree, peer).map((c) => c.slice(c.lastIndexOf("@") + 1)));
      expect([...versions], peer).toEqual([peer === "@bufbuild/protobuf" ? expect.stringMatching(/^2\./) : newest]);
    }
    // And on disk: each peer exactly once, at the top of node_modules.
    const parseable = await project.bin("npm", ["ls", "--all", "--parseable", "--omit=dev", ...peers]);
    const installed = parseable.stdout
      .split("\n")
      .filter((p) => peers.some((peer) => p.endsWith(`node_modules/${peer}`)))
      .map((p) => p.slice(project.dir.length + 1));
    expect(installed.sort()).toEqual(peers.map((peer) => `node_modules/${peer}`).sort());
  });

  it(`runs the quick start on Connect ${newest}: generated, type-checked, deduplicated`, async () => {
    expect((await project.bin("buf", ["generate"])).code).toBe(0);
    const checked = await project.bin("tsc", ["-p", "tsconfig.json"]);
    expect(checked.stdout + checked.stderr).toBe("");
    const server = await project.startServer("server.ts");
    try {
      const client = await project.bin("tsx", ["client.ts"], { SERVER_URL: server.url });
      expect(client.stdout).toBe(
        "placed order-1\nattempt 1: order-2, replayed false\nattempt 2: order-2, replayed true\n",
      );
      expect(server.output().match(/^handler ran: .*$/gm)).toHaveLength(2);
    } finally {
      await server.stop();
    }
  });
});
