import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { LintExit, type LintOptions, runLint } from "../../src/cli/lint-command.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const fixtures = join(root, "test/lint/fixtures");
const temp = mkdtempSync(join(tmpdir(), "lint-test-"));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

interface JsonFinding {
  rule: string;
  path: string;
  line: number;
  column: number;
  element: string;
  message: string;
}

async function lint(options: Partial<LintOptions>) {
  let stdout = "";
  let stderr = "";
  const exit = await runLint(
    { path: ".", format: "text", ...options },
    { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) } },
  );
  return { exit, stdout, stderr };
}

async function lintJson(options: Partial<LintOptions>) {
  const run = await lint({ ...options, format: "json" });
  return { ...run, findings: (JSON.parse(run.stdout) as { findings: JsonFinding[] }).findings };
}

/**
 * What the fixture expects: every line ending in `// want: RULE` is a
 * declaration the lint must report there, at its first non-blank column.
 */
function expectedFindings(workspace: string): Pick<JsonFinding, "rule" | "path" | "line" | "column">[] {
  const expected: Pick<JsonFinding, "rule" | "path" | "line" | "column">[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        walk(path);
      } else if (entry.name.endsWith(".proto")) {
        readFileSync(path, "utf8")
          .split("\n")
          .forEach((text, i) => {
            const want = /\/\/ want: ([A-Z_]+)$/.exec(text);
            if (want?.[1] !== undefined) {
              expected.push({
                rule: want[1],
                path: relative(workspace, path),
                line: i + 1,
                column: text.search(/\S/) + 1,
              });
            }
          });
      }
    }
  };
  walk(join(workspace, "proto"));
  return expected;
}

const byPosition = (a: { path: string; line: number }, b: { path: string; line: number }) =>
  a.path.localeCompare(b.path) || a.line - b.line;

describe("connect-idempotency lint", () => {
  it("reports every problem of the fixture at its file, line and column, and exits 1", async () => {
    const workspace = join(fixtures, "problems");
    const { exit, findings } = await lintJson({ path: workspace });
    expect(exit).toBe(LintExit.PROBLEMS);
    const expected = expectedFindings(workspace).sort(byPosition);
    expect(expected).toHaveLength(15);
    expect(findings.map(({ rule, path, line, column }) => ({ rule, path, line, column }))).toEqual(expected);
    expect(findings.find((f) => f.element === "bad.v1.TransferService.Transfer")?.message).toMatch(
      /rpc Transfer has no request ID/,
    );
  });

  it("says why a key field or an exclusion cannot work", async () => {
    const { findings } = await lintJson({ path: join(fixtures, "problems") });
    const messages = findings.filter((f) => f.element.startsWith("bad.v1.BookingService.")).map((f) => f.message);
    expect(messages).toEqual([
      expect.stringMatching(/key_fields "booking_id": bad\.v1\.BookingRequest has no field booking_id/),
      expect.stringMatching(/key_fields "room" is a message field; a key field is a singular scalar/),
      expect.stringMatching(/key_fields "room\.note" is not \(google\.api\.field_behavior\) = REQUIRED/),
      expect.stringMatching(/fingerprint_exclude "sent_at": bad\.v1\.StampedBookingRequest has no field sent_at/),
    ]);
  });

  it("prints one line per problem as path:line:column: RULE: message", async () => {
    const { exit, stdout, stderr } = await lint({ path: join(fixtures, "problems") });
    expect(exit).toBe(LintExit.PROBLEMS);
    const lines = stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(15);
    expect(lines).toContain(
      "proto/bad/v1/nested.proto:31:3: REQUEST_ID_NOT_TOP_LEVEL: field trip_request_id is marked as request ID, " +
        "but bad.v1.Trip is no method's input; only top-level string fields of a request message are read: move the mark to the request",
    );
    expect(stderr).toBe("connect-idempotency lint: 15 problems in 5 files\n");
  });

  it("exits 0 without output on a clean workspace", async () => {
    const { exit, stdout, stderr } = await lint({ path: join(fixtures, "clean") });
    expect(exit).toBe(LintExit.CLEAN);
    expect(stdout).toBe("");
    expect(stderr).toMatch(/no problems/);
  });

  it("passes this repository's own protos", async () => {
    const { exit, findings } = await lintJson({ path: root });
    expect(findings).toEqual([]);
    expect(exit).toBe(LintExit.CLEAN);
  });

  it("reads a buf image instead of building, with the same findings", async () => {
    const image = join(temp, "problems.binpb");
    await promisify(execFile)(join(root, "node_modules/.bin/buf"), ["build", "-o", image], {
      cwd: join(fixtures, "problems"),
    });
    const fromImage = await lintJson({ image });
    const built = await lintJson({ path: join(fixtures, "problems") });
    expect(fromImage.exit).toBe(LintExit.PROBLEMS);
    // Without a workspace, files are named as they are imported.
    expect(fromImage.findings).toEqual(built.findings.map((f) => ({ ...f, path: f.path.replace(/^proto\//, "") })));
  });

  it.each([
    ["a directory that does not exist", { path: join(temp, "missing") }, /is not a directory/],
    [
      "a workspace that does not compile",
      { path: join(fixtures, "broken") },
      /buf build failed[\s\S]*broken\.proto:8:1/,
    ],
    ["an image file that does not exist", { image: join(temp, "missing.binpb") }, /cannot read image/],
    ["a file that is not an image", { image: join(temp, "garbage.binpb") }, /not a buf image or FileDescriptorSet/],
  ])("exits 2 on %s", async (_, options, message) => {
    writeFileSync(join(temp, "garbage.binpb"), Buffer.from("this is not protobuf\xff\xff\xff"));
    const { exit, stdout, stderr } = await lint(options);
    expect(exit).toBe(LintExit.BAD_INPUT);
    expect(stdout).toBe("");
    expect(stderr).toMatch(message);
  });
});

describe("connect-idempotency CLI", () => {
  const cli = (args: string[]) =>
    promisify(execFile)(process.execPath, ["--import", "tsx", join(root, "src/cli/main.ts"), ...args], {
      cwd: root,
    }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code: number; stdout: string; stderr: string }) => ({
        code: error.code,
        stdout: error.stdout,
        stderr: error.stderr,
      }),
    );

  it("runs `lint` with its exit status and JSON output", async () => {
    const { code, stdout } = await cli(["lint", "--path", join(fixtures, "problems"), "--format", "json"]);
    expect(code).toBe(1);
    expect((JSON.parse(stdout) as { findings: unknown[] }).findings).toHaveLength(15);
  });

  it("lists methods with their key and duplicate mode (`methods`)", async () => {
    const { code, stdout } = await cli(["methods", "--path", root, "--json"]);
    expect(code).toBe(0);
    const { methods } = JSON.parse(stdout) as { methods: { method: string; key: string; onDuplicate: string }[] };
    expect(methods.find((m) => m.method === "fixture.v1.FixtureService/Reject")).toMatchObject({
      key: "request_id request_id",
      onDuplicate: "reject",
    });
    expect(methods.find((m) => m.method === "fixture.v1.FixtureService/PlaceOrder")).toMatchObject({
      key: "natural order_id,shop.id",
      onDuplicate: "default",
    });
    expect(methods.find((m) => m.method === "fixture.v1.FixtureService/Stamped")).toMatchObject({
      fingerprintExclude: ["client_sent_at", "trace.id"],
      tombstoneRetentionMs: 3_600_000,
    });
    const opaque = methods.find((m) => m.method === "fixture.v1.FixtureService/Opaque");
    expect(opaque).toMatchObject({ retentionMs: 60_000 });
    // Unset: the interceptor's tombstoneRetentionMs applies.
    expect(opaque).not.toHaveProperty("tombstoneRetentionMs");
  });

  it("exits 2 on a usage error", async () => {
    const { code, stderr } = await cli(["lint", "--format", "xml"]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/xml/);
  });
});
