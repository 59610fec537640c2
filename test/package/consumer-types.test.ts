import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ExampleProject, createExampleProject, packRepository, repo } from "../examples/example-project.js";

// What a TypeScript user of the tarball sees: the declarations resolve
// without extra installs under every module resolution we claim, option
// typos and an async SQLite transaction fail to compile with readable
// messages. The project is examples/quickstart with the package installed.

const tsc7 = join(repo, "node_modules/typescript/bin/tsc");
// TypeScript 7 dropped moduleResolution node10; 5.9 still has it.
const tsc5 = join(repo, "node_modules/typescript5/bin/tsc");
const strict = ["--noEmit", "--strict", "--skipLibCheck", "false", "--types", "node", "--target", "ES2022"];

let packed: { tarball: string; dir: string };
let project: ExampleProject;

beforeAll(async () => {
  packed = await packRepository();
  project = await createExampleProject("quickstart", packed.tarball);
  expect((await project.bin("buf", ["generate"])).code).toBe(0);
  writeFileSync(
    join(project.dir, "imports.ts"),
    `import { createIdempotencyInterceptor, createPostgresStore, createSqliteStore } from "connect-idempotency";
import { createRequestIdInterceptor, createRetryInterceptor } from "connect-idempotency/client";
import { MethodPolicySchema } from "connect-idempotency/gen/idempotency/v1/idempotency_pb.js";
const store = createSqliteStore({ path: ":memory:" });
createIdempotencyInterceptor({ store, leaseMs: 10_000 });
createRetryInterceptor({ maxAttempts: 2 });
createRequestIdInterceptor();
export const schema: string = MethodPolicySchema.typeName;
// The better-sqlite3 and pg types are there: neither handle is any.
// @ts-expect-error: a Database has no method notAMethod
store.database.notAMethod();
export const pg = createPostgresStore({ connectionString: "postgres://x" }).then((s) => s.transact(async (client) => client.query("SELECT 1")));
`,
  );
  writeFileSync(
    join(project.dir, "typos.ts"),
    `import { createIdempotencyInterceptor, createSqliteStore } from "connect-idempotency";
createSqliteStore({ path: "x.db", durabilty: "full" });
createIdempotencyInterceptor({ store: createSqliteStore({ path: ":memory:" }), maxwait: 1000 });
`,
  );
  writeFileSync(
    join(project.dir, "async-commit.ts"),
    `import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { atomicEffects, createSqliteStore } from "connect-idempotency";
import { PlaceOrderResponseSchema } from "./gen/shop/v1/shop_pb.js";
declare const ctx: HandlerContext;
const store = createSqliteStore({ path: ":memory:" });
const effects = atomicEffects(ctx, store);
export const ok: Promise<string> = effects.commit((db) => {
  db.exec("SELECT 1");
  return create(PlaceOrderResponseSchema, { orderId: "o" });
}).then((response) => response.orderId);
export const bad = effects.commit(async (db) => {
  db.exec("SELECT 1");
  return create(PlaceOrderResponseSchema, { orderId: "o" });
});
`,
  );
}, 120_000);

afterAll(() => {
  project?.remove();
});

// TypeScript 7 refuses file names on the command line next to a tsconfig.json unless told to ignore it.
const tsc = (compiler: string, args: string[]) =>
  project.bin("node", [compiler, ...strict, ...(compiler === tsc7 ? ["--ignoreConfig"] : []), ...args]);

describe("the package's types, for a consumer with skipLibCheck: false", () => {
  it.each([
    ["NodeNext", "NodeNext"],
    ["Node16", "Node16"],
    ["ESNext", "Bundler"],
    ["Preserve", "Bundler"],
  ])("resolve with module %s, moduleResolution %s (TypeScript 7)", async (module, resolution) => {
    const result = await tsc(tsc7, ["--module", module, "--moduleResolution", resolution, "imports.ts"]);
    expect(result.stdout).toBe("");
    expect(result.code).toBe(0);
  });

  it("resolve with moduleResolution node10, through typesVersions (TypeScript 5.9)", async () => {
    // esModuleInterop, as \`tsc --init\` sets it: better-sqlite3's types are \`export =\`.
    const result = await tsc(tsc5, [
      "--module",
      "CommonJS",
      "--moduleResolution",
      "node10",
      "--esModuleInterop",
      "imports.ts",
    ]);
    expect(result.stdout).toBe("");
    expect(result.code).toBe(0);
  });

  it("resolve from a CommonJS file with module NodeNext, and require() loads the package at run time", async () => {
    writeFileSync(
      join(project.dir, "imports.cts"),
      `import { createSqliteStore } from "connect-idempotency";\nexport const store = createSqliteStore({ path: ":memory:" });\n`,
    );
    const result = await tsc(tsc7, ["--module", "NodeNext", "--moduleResolution", "NodeNext", "imports.cts"]);
    expect(result.stdout).toBe("");
    expect(result.code).toBe(0);
    const required = await project.bin("node", [
      "-e",
      `const root = require("connect-idempotency"); const client = require("connect-idempotency/client");
       console.log(typeof root.createIdempotencyInterceptor, typeof client.createRetryInterceptor)`,
    ]);
    expect(required).toEqual({ code: 0, stdout: "function function\n", stderr: "" });
  });

  it("report option typos", async () => {
    const result = await tsc(tsc7, ["--module", "NodeNext", "--moduleResolution", "NodeNext", "typos.ts"]);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toMatch(/typos\.ts\(2,\d+\): error TS\d+: .*'durabilty'/);
    expect(result.stdout).toMatch(/typos\.ts\(3,\d+\): error TS\d+: .*'maxwait'/);
  });

  it("refuse an async function for the SQLite store's commit, saying it must be synchronous", async () => {
    const result = await tsc(tsc7, ["--module", "NodeNext", "--moduleResolution", "NodeNext", "async-commit.ts"]);
    expect(result.code).not.toBe(0);
    const errors = result.stdout.split("\n").filter((line) => /error TS/.test(line));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^async-commit\.ts\(12,\d+\): error TS\d+:/);
    expect(result.stdout).toContain("the function must be synchronous");
    expect(result.stdout).not.toContain("$typeName");
  });
});
