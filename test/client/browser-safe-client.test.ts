import { gzipSync } from "node:zlib";
import { build, type Plugin } from "esbuild";
import { describe, expect, it } from "vitest";

// What a browser bundle must never contain: Node.js modules and the stores'
// drivers. They fail to bundle, or bundle into code that breaks on load.
const forbidden = /^(node:|pg$|pg\/|better-sqlite3$)/;
const nodeBuiltins = new Set([
  "crypto",
  "fs",
  "path",
  "os",
  "cluster",
  "worker_threads",
  "child_process",
  "events",
  "http2",
  "zlib",
]);

function refuseServerModules(found: string[]): Plugin {
  return {
    name: "refuse-server-modules",
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) => {
        if (forbidden.test(args.path) || nodeBuiltins.has(args.path)) {
          found.push(`${args.path} (imported by ${args.importer})`);
          return { path: args.path, external: true };
        }
        return undefined;
      });
    },
  };
}

async function bundle(contents: string, plugins: Plugin[] = []) {
  const result = await build({
    stdin: { contents, resolveDir: process.cwd(), loader: "ts" },
    bundle: true,
    platform: "browser",
    format: "esm",
    minify: true,
    write: false,
    metafile: true,
    logLevel: "silent",
    plugins,
  });
  const code = result.outputFiles[0]?.contents ?? new Uint8Array();
  return { bytes: code.byteLength, gzip: gzipSync(code).byteLength, inputs: Object.keys(result.metafile.inputs) };
}

describe("connect-idempotency/client in a browser bundle", () => {
  it("bundles for --platform=browser without any Node.js module, pg or better-sqlite3", async () => {
    const found: string[] = [];
    const { inputs } = await bundle('export * from "./src/client/index.ts";', [refuseServerModules(found)]);
    expect(found).toEqual([]);
    expect(inputs.filter((input) => /src\/(server|store|cli|otel)\/|src\/client\/node\//.test(input))).toEqual([]);
  });

  it("notices a Node.js import: the file pending-ID backend is refused", async () => {
    // The check above can fail: the Node entry point trips it.
    const found: string[] = [];
    await bundle('export * from "./src/client/node/index.ts";', [refuseServerModules(found)]);
    expect(found.some((f) => f.startsWith("node:fs/promises"))).toBe(true);
  });

  it("reports what /client adds to a connect-web app, minified and gzipped", async () => {
    const web = await bundle('export { createConnectTransport } from "@connectrpc/connect-web";');
    const withClient = await bundle(
      'export { createConnectTransport } from "@connectrpc/connect-web"; export * from "./src/client/index.ts";',
    );
    const added = { bytes: withClient.bytes - web.bytes, gzip: withClient.gzip - web.gzip };
    // Printed for docs/web-clients.md; only the direction is asserted.
    console.log(
      `connect-web alone: ${web.bytes} B (${web.gzip} B gzip); /client adds ${added.bytes} B (${added.gzip} B gzip)`,
    );
    expect(added.bytes).toBeGreaterThan(0);
    // What a checkout typically ships: a generated client against the plain Connect client.
    const plain = await bundle(
      'export { createConnectTransport } from "@connectrpc/connect-web"; export { createClient } from "@connectrpc/connect"; export { PaymentService } from "./gen/demo/v1/payments_pb.ts";',
    );
    const generated = await bundle(
      'export { createConnectTransport } from "@connectrpc/connect-web"; export { createPaymentServiceClient } from "./gen/demo/v1/payments_idempotency.ts"; export { callWithOutcome, createWebStoragePendingRequestIds, idempotentMutationFn } from "./src/client/index.ts";',
    );
    console.log(
      `generated client + callWithOutcome + web storage + TanStack helper add ${generated.bytes - plain.bytes} B (${generated.gzip - plain.gzip} B gzip) over createClient`,
    );
    expect(generated.bytes).toBeGreaterThan(plain.bytes);
  });
});
