import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ExampleProject, createExampleProject, listFiles, packRepository } from "./example-project.js";

// examples/fastify and examples/express (on Express 5, and on Express 4
// linked in its place), each set up from the packed package as a user would:
// generated, linted, type-checked, then run.

const variants = [
  { name: "fastify 5", example: "fastify", framework: "fastify", major: "5", aliases: {} },
  { name: "express 5", example: "express", framework: "express", major: "5", aliases: {} },
  { name: "express 4", example: "express", framework: "express", major: "4", aliases: { express: "express4" } },
] as const;

let packed: { tarball: string; dir: string };
beforeAll(async () => {
  packed = await packRepository();
}, 120_000);
afterAll(() => {
  if (packed !== undefined) rmSync(packed.dir, { recursive: true, force: true });
});

describe.each(variants)("examples/$example on $name", ({ example, framework, major, aliases }) => {
  let project: ExampleProject;
  beforeAll(async () => {
    project = await createExampleProject(example, packed.tarball, { aliases });
  }, 60_000);
  afterAll(() => project?.remove());

  it(`runs on ${framework} ${major}`, () => {
    const manifest = JSON.parse(readFileSync(join(project.dir, "node_modules", framework, "package.json"), "utf8"));
    expect(manifest.version.split(".")[0]).toBe(major);
  });

  it("generates, lints and type-checks (tsc --strict, skipLibCheck: false)", async () => {
    expect(await project.bin("buf", ["generate"])).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(listFiles(join(project.dir, "gen"))).toEqual(["shop/v1/shop_idempotency.ts", "shop/v1/shop_pb.ts"]);
    expect(await project.bin("buf", ["lint"])).toEqual({ code: 0, stdout: "", stderr: "" });
    expect((await project.bin("connect-idempotency", ["lint"])).code).toBe(0);
    const checked = await project.bin("tsc", ["-p", "tsconfig.json"]);
    expect(checked.stdout + checked.stderr).toBe("");
    expect(checked.code).toBe(0);
  });

  it("deduplicates: a retry with the same request ID is replayed with the header, and the handler runs once for it", async () => {
    const server = await project.startServer("server.ts");
    try {
      const client = await project.bin("tsx", ["client.ts"], { SERVER_URL: server.url });
      expect(client).toEqual({
        code: 0,
        stdout: "placed order-1\nattempt 1: order-2, replayed false\nattempt 2: order-2, replayed true\n",
        stderr: "",
      });
      expect(server.output().match(/^handler ran: .*$/gm)).toEqual([
        "handler ran: order-1 for book-42",
        "handler ran: order-2 for pen-7",
      ]);
    } finally {
      await server.stop();
    }
  });
});
