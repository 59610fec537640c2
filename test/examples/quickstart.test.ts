import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ExampleProject,
  createExampleProject,
  fencedBlockAfter,
  listFiles,
  packRepository,
  repo,
} from "./example-project.js";

// The README's quick start, as a new user runs it: examples/quickstart (whose
// files are the README's code blocks, see test/docs/readme-snippets.test.ts)
// with the packed package installed.

let packed: { tarball: string; dir: string };
let project: ExampleProject;

beforeAll(async () => {
  packed = await packRepository();
  project = await createExampleProject("quickstart", packed.tarball);
}, 120_000);

afterAll(() => {
  project?.remove();
  if (packed !== undefined) rmSync(packed.dir, { recursive: true, force: true });
});

describe("examples/quickstart", () => {
  it("generates code for the user's proto only, without warnings", async () => {
    const generated = await project.bin("buf", ["generate"]);
    expect(generated).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(listFiles(join(project.dir, "gen"))).toEqual(["shop/v1/shop_idempotency.ts", "shop/v1/shop_pb.ts"]);
  });

  it("passes buf lint (STANDARD) with the package's module in the workspace", async () => {
    expect(await project.bin("buf", ["lint"])).toEqual({ code: 0, stdout: "", stderr: "" });
  });

  it("passes connect-idempotency lint, which checks only the user's file", async () => {
    const linted = await project.bin("connect-idempotency", ["lint"]);
    expect(linted).toEqual({ code: 0, stdout: "", stderr: "connect-idempotency lint: 1 files, no problems\n" });
  });

  it("type-checks with tsc --strict and skipLibCheck: false", async () => {
    const checked = await project.bin("tsc", ["-p", "tsconfig.json"]);
    expect(checked.stdout + checked.stderr).toBe("");
    expect(checked.code).toBe(0);
  });

  it("runs: the client prints what the README shows, and the handler ran twice for three calls", async () => {
    const server = await project.startServer("server.ts");
    try {
      const client = await project.bin("tsx", ["client.ts"], { SERVER_URL: server.url });
      expect(client.stderr).toBe("");
      expect(client.stdout).toBe(fencedBlockAfter(join(repo, "README.md"), "**5. Run it**", "text"));
      expect(server.output().match(/^handler ran: .*$/gm)).toEqual([
        "handler ran: order-1 for book-42",
        "handler ran: order-2 for pen-7",
      ]);
    } finally {
      await server.stop();
    }
  });

  it("builds beside a vendored googleapis once the package's Google copies are excluded, as docs/protos.md says", async () => {
    // Vendored googleapis: here the package's own copies stand in for Google's files.
    mkdirSync(join(project.dir, "third_party/googleapis/google"), { recursive: true });
    cpSync(
      join(project.dir, "node_modules/connect-idempotency/proto/google/api"),
      join(project.dir, "third_party/googleapis/google/api"),
      {
        recursive: true,
      },
    );
    const original = readFileSync(join(project.dir, "buf.yaml"), "utf8");
    const ours = "node_modules/connect-idempotency/proto";
    const workspace = (excludes: string) =>
      `version: v2\nmodules:\n  - path: proto\n  - path: third_party/googleapis\n  - path: ${ours}\n${excludes}    lint:\n      ignore: [${ours}]\n`;
    try {
      writeFileSync(join(project.dir, "buf.yaml"), workspace(""));
      const clash = await project.bin("buf", ["build"]);
      expect(clash.code).not.toBe(0);
      expect(clash.stderr).toContain("google/api/field_behavior.proto is contained in multiple modules");
      writeFileSync(join(project.dir, "buf.yaml"), workspace(`    excludes: [${ours}/google]\n`));
      expect(await project.bin("buf", ["build"])).toEqual({ code: 0, stdout: "", stderr: "" });
    } finally {
      writeFileSync(join(project.dir, "buf.yaml"), original);
    }
  });
});
