import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packRepository } from "../examples/example-project.js";

// What a user gets from `npm install connect-idempotency`: the `npm pack`
// tarball, unpacked into a fresh project. Its dependencies are linked from
// this repo's node_modules instead of installed, because installing would
// compile better-sqlite3 again (about 75 s here) and test nothing of ours.

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, "../..");
const buf = join(repo, "node_modules/@bufbuild/buf/bin/buf");

let project: string;
let pkg: string;
let files: string[];

beforeAll(async () => {
  project = mkdtempSync(join(tmpdir(), "connect-idempotency-pack-"));
  const packed = await packRepository();
  files = [...packed.files];
  const modules = join(project, "node_modules");
  pkg = join(modules, "connect-idempotency");
  mkdirSync(pkg, { recursive: true });
  await run("tar", ["-xzf", packed.tarball, "-C", pkg, "--strip-components=1"]);
  rmSync(packed.dir, { recursive: true, force: true });
  for (const entry of readdirSync(join(repo, "node_modules"))) {
    if (entry !== "connect-idempotency" && entry !== ".bin" && !entry.startsWith(".")) {
      symlinkSync(join(repo, "node_modules", entry), join(modules, entry));
    }
  }
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "user-project", type: "module", private: true }));
}, 120_000);

afterAll(() => {
  rmSync(project, { recursive: true, force: true });
});

describe("npm package", () => {
  it("ships compiled JavaScript with declarations, not TypeScript sources", () => {
    expect(files).toContain("dist/src/index.js");
    expect(files).toContain("dist/src/index.d.ts");
    expect(files).toContain("dist/src/client/index.d.ts");
    expect(files).toContain("dist/src/client/node/index.d.ts");
    expect(files).toContain("dist/src/protocol/index.d.ts");
    expect(files).toContain("dist/src/testing/index.d.ts");
    expect(files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).toEqual([]);
    expect(files.some((f) => f.startsWith("test/") || f.startsWith("src/"))).toBe(false);
  });

  it("ships the options and Google annotation protos for users' buf workspaces", () => {
    // What users import, and nothing else: no demo services, no internal envelope.
    expect(files.filter((f) => f.startsWith("proto/")).sort()).toEqual([
      "proto/google/api/field_behavior.proto",
      "proto/google/api/field_info.proto",
      "proto/idempotency/v1/idempotency.proto",
    ]);
    // The demo's services live with the demo: nothing of them reaches a user's workspace.
    expect(files.filter((f) => f.includes("demo"))).toEqual([]);
  });

  it("exports the Node-only pending-ID file backend as connect-idempotency/client/node", async () => {
    const script = `
      import { createFilePendingRequestIds } from "connect-idempotency/client/node";
      import { idempotencyExposedHeaders } from "connect-idempotency/client";
      const pending = createFilePendingRequestIds("pending/ids.json");
      await pending.set("k", "id-1", 60000);
      console.log(JSON.stringify({ id: await pending.get("k"), exposed: idempotencyExposedHeaders }));
    `;
    writeFileSync(join(project, "pending.mjs"), script);
    const { stdout } = await run("node", ["pending.mjs"], { cwd: project });
    expect(JSON.parse(stdout)).toEqual({
      id: "id-1",
      exposed: ["idempotency-replayed", "idempotency-first-executed-at", "idempotency-expires"],
    });
  });

  it("resolves every import path to the compiled form of its index file", async () => {
    const paths = {
      "connect-idempotency": "../../src/index.js",
      "connect-idempotency/client": "../../src/client/index.js",
      "connect-idempotency/client/node": "../../src/client/node/index.js",
      "connect-idempotency/protocol": "../../src/protocol/index.js",
      "connect-idempotency/testing": "../../src/testing/index.js",
    };
    const script = `
      const names = {};
      for (const path of ${JSON.stringify(Object.keys(paths))}) names[path] = Object.keys(await import(path)).sort();
      console.log(JSON.stringify(names));
    `;
    writeFileSync(join(project, "entry-points.mjs"), script);
    const { stdout } = await run("node", ["entry-points.mjs"], { cwd: project });
    const fromSources: Record<string, string[]> = {};
    for (const [path, source] of Object.entries(paths)) fromSources[path] = Object.keys(await import(source)).sort();
    expect(JSON.parse(stdout)).toEqual(fromSources);
  });

  it("exposes the CLI bin", async () => {
    const bin = join(pkg, "dist/src/cli/main.js");
    expect(readFileSync(bin, "utf8").startsWith("#!/usr/bin/env node")).toBe(true);
    const { stdout } = await run("node", [bin, "--help"], { cwd: project });
    expect(stdout).toMatch(/lint/);
    expect(stdout).toMatch(/stats/);
  });

  it("generates typed clients in a user's buf workspace with the plugin bin, importing our protos from node_modules", async () => {
    const plugin = join(pkg, "dist/src/codegen/protoc-gen-connect-idempotency.js");
    expect(readFileSync(plugin, "utf8").startsWith("#!/usr/bin/env node")).toBe(true);
    mkdirSync(join(project, "proto/shop/v1"), { recursive: true });
    writeFileSync(
      join(project, "proto/shop/v1/shop.proto"),
      `syntax = "proto3";
package shop.v1;
import "google/api/field_info.proto";
import "idempotency/v1/idempotency.proto";
service OrderService {
  rpc PlaceOrder(PlaceOrderRequest) returns (PlaceOrderResponse);
  rpc CancelOrder(CancelOrderRequest) returns (CancelOrderResponse);
}
message PlaceOrderRequest {
  string request_id = 1 [(idempotency.v1.request_id) = true];
  string sku = 2;
}
message PlaceOrderResponse { string order_id = 1; }
message CancelOrderRequest {
  string request_id = 1 [(google.api.field_info).format = UUID4];
  string order_id = 2;
}
message CancelOrderResponse {}
`,
    );
    writeFileSync(
      join(project, "buf.yaml"),
      "version: v2\nmodules:\n  - path: proto\n  - path: node_modules/connect-idempotency/proto\n",
    );
    writeFileSync(
      join(project, "buf.gen.yaml"),
      `version: v2
clean: true
plugins:
  - local: ${join(repo, "node_modules/.bin/protoc-gen-es")}
    out: gen
    opt: [target=ts, import_extension=js]
  - local: ["node", "${plugin}"]
    out: gen
    opt: [target=ts, import_extension=js]
`,
    );
    await run(buf, ["generate"], { cwd: project });
    const generated = readFileSync(join(project, "gen/shop/v1/shop_idempotency.ts"), "utf8");
    expect(generated).toContain('from "connect-idempotency/client"');
    expect(generated).toContain("export function createOrderServiceClient(");
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          skipLibCheck: false,
          types: ["node"],
          noEmit: true,
        },
        include: ["gen"],
      }),
    );
    await run("node", [join(repo, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], { cwd: project });
  });

  it("runs in Node ESM: a server on a file store deduplicates, a replay carries the header, checkpoints run in the worker", async () => {
    const script = `
      import { existsSync } from "node:fs";
      import * as http2 from "node:http2";
      import { createClient } from "@connectrpc/connect";
      import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
      import { createIdempotencyInterceptor, createSqliteStore } from "connect-idempotency";
      import { createRequestIdInterceptor, createRetryInterceptor } from "connect-idempotency/client";
      import { OrderService } from "./gen/shop/v1/shop_pb.js";
      let executions = 0;
      const store = createSqliteStore({ path: "smoke.db", durability: "full" });
      const server = http2.createServer(connectNodeAdapter({
        readMaxBytes: 4 * 1024 * 1024,
        interceptors: [createIdempotencyInterceptor({ store })],
        routes: (r) => r.service(OrderService, {
          placeOrder: (req) => ({ orderId: req.sku + ++executions }),
        }),
      }));
      const sessions = new Set<http2.ServerHttp2Session>();
      server.on("session", (s) => sessions.add(s));
      await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
      const transport = createGrpcTransport({
        baseUrl: "http://127.0.0.1:" + (server.address() as { port: number }).port,
        interceptors: [createRetryInterceptor(), createRequestIdInterceptor()],
      });
      const client = createClient(OrderService, transport);
      const requestId = "3f0c8d4e-5b7a-4c1e-9d2f-6a8b0c1d2e3f";
      const replayed: (string | null)[] = [];
      for (let i = 0; i < 2; i++) {
        await client.placeOrder({ requestId, sku: "a" }, {
          onHeader: (h) => replayed.push(h.get("idempotency-replayed")),
        });
      }
      await client.placeOrder({ sku: "b" });
      // Long enough for the worker to have started, or to have failed and handed checkpoints back.
      await new Promise((ok) => setTimeout(ok, 500));
      const autocheckpoint = store.database.pragma("wal_autocheckpoint", { simple: true });
      for (const s of sessions) s.destroy();
      server.close();
      await store.close();
      console.log(JSON.stringify({ executions, replayed, autocheckpoint, walLeft: existsSync("smoke.db-wal") }));
    `;
    // TypeScript, run through tsx, so that it imports the code buf generated above.
    writeFileSync(join(project, "smoke.ts"), script);
    const { stdout } = await run("node", ["--import", "tsx", "smoke.ts"], { cwd: project });
    // The store's connection leaves checkpoints to the worker thread, which
    // runs from the compiled package, but for its 4,096-page backstop; the
    // last close removes the WAL.
    expect(JSON.parse(stdout)).toEqual({
      executions: 2,
      replayed: [null, "true"],
      autocheckpoint: 4096,
      walLeft: false,
    });
  });

  it("lints a user's buf workspace with the CLI bin", async () => {
    const bin = join(pkg, "dist/src/cli/main.js");
    const clean = await run("node", [bin, "lint", "--path", "proto"], {
      cwd: project,
      env: { ...process.env, PATH: `${join(repo, "node_modules/.bin")}:${process.env.PATH}` },
    }).then(
      () => 0,
      (error: { code: number }) => error.code,
    );
    // CancelOrder's ID is not key_required nor REQUIRED: consistent, so clean.
    expect(clean).toBe(0);
  });
});
