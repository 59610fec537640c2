import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

// The examples in the JSDoc of the functions a user meets first compile
// against the current sources, as a user's file importing the package would:
// a renamed option or a changed signature fails here, not in a user's editor.

const repo = resolve(import.meta.dirname, "../..");
const run = promisify(execFile);

/** The functions whose docs carry an example, and where each is declared. */
const documented = [
  { name: "createIdempotencyInterceptor", file: "src/server/idempotency-interceptor.ts" },
  { name: "atomicEffects", file: "src/server/atomic-effects.ts" },
  { name: "createIdempotentClient", file: "src/client/idempotent-client.ts" },
  // Printed by the plugin into every generated client; the demo's stands for all.
  { name: "createPaymentServiceClient", file: "gen/demo/v1/payments_idempotency.ts" },
];

/** The import paths of the package, as the examples import them, and their index files. */
const packagePaths = {
  "connect-idempotency": "src/index.ts",
  "connect-idempotency/client": "src/client/index.ts",
  "connect-idempotency/client/node": "src/client/node/index.ts",
  "connect-idempotency/protocol": "src/protocol/index.ts",
  "connect-idempotency/testing": "src/testing/index.ts",
};

/** The fenced ```ts blocks of the JSDoc right before `export function name`. */
function jsdocExamples(file: string, name: string): string[] {
  const text = readFileSync(join(repo, file), "utf8");
  const doc =
    new RegExp(`/\\*\\*((?:(?!\\*/)[\\s\\S])*)\\*/\\s*export (?:async )?function ${name}\\b`).exec(text)?.[1] ?? "";
  const lines = doc.split("\n").map((line) => line.replace(/^\s*\* ?/, ""));
  return [...lines.join("\n").matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

describe("JSDoc examples", () => {
  it.each(documented)("$name has an example", ({ name, file }) => {
    expect(jsdocExamples(file, name).length).toBeGreaterThan(0);
  });

  it("compile against the sources, as a user's ES module importing the package", async () => {
    // Under node_modules, so that no tsconfig of the repository picks them up,
    // and packages resolve from this repository's node_modules.
    const cache = join(repo, "node_modules/.cache");
    mkdirSync(cache, { recursive: true });
    const dir = mkdtempSync(join(cache, "jsdoc-examples-"));
    try {
      const files = documented.flatMap(({ name, file }) =>
        jsdocExamples(file, name).map((example, i) => {
          const path = join(dir, `${name}-${i}.mts`);
          writeFileSync(path, example);
          return path;
        }),
      );
      const compilerOptions = {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        lib: ["ES2023"],
        types: ["node"],
        strict: true,
        noUnusedLocals: true,
        verbatimModuleSyntax: true,
        skipLibCheck: true,
        noEmit: true,
        // `./gen/...` in an example is this repository's gen/, and
        // `./payments_idempotency.js` the generated file beside the example.
        rootDirs: [dir, repo, join(repo, "gen/demo/v1")],
        paths: Object.fromEntries(Object.entries(packagePaths).map(([path, index]) => [path, [join(repo, index)]])),
      };
      writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions, files }));
      const tsc = run(
        process.execPath,
        [join(repo, "node_modules/typescript/bin/tsc"), "-p", join(dir, "tsconfig.json")],
        { cwd: dir },
      );
      const failure = await tsc.then(
        () => "",
        (error: { stdout?: string; message: string }) => error.stdout || error.message,
      );
      expect(failure.replaceAll(`${dir}/`, "")).toBe("");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
