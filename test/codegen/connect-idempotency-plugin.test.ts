import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { create, fromBinary } from "@bufbuild/protobuf";
import { CodeGeneratorRequestSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { createConnectIdempotencyPlugin } from "../../src/codegen/connect-idempotency-plugin.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const fixtures = join(root, "test/lint/fixtures");
// The plugin's options in buf.gen.yaml, as buf passes them.
const repoParameter = "target=ts,import_extension=js,runtime_import=../src/client/index.js";

/** A CodeGeneratorRequest for the files of a buf workspace, as buf would send it. */
async function requestFor(workspace: string, parameter: string, files: (name: string) => boolean) {
  const { stdout } = await promisify(execFile)(join(root, "node_modules/.bin/buf"), ["build", "-o", "-"], {
    cwd: workspace,
    encoding: "buffer",
    maxBuffer: 64 * 1024 * 1024,
  });
  const set = fromBinary(FileDescriptorSetSchema, stdout);
  return create(CodeGeneratorRequestSchema, {
    parameter,
    protoFile: set.file,
    fileToGenerate: set.file.map((f) => f.name).filter(files),
  });
}

function generate(request: Awaited<ReturnType<typeof requestFor>>) {
  const warnings: string[] = [];
  const response = createConnectIdempotencyPlugin((line) => warnings.push(line)).run(request);
  const files = new Map(response.file.map((f) => [f.name, f.content]));
  return { files, warnings, error: response.error };
}

describe("protoc-gen-connect-idempotency", () => {
  it("generates exactly the committed gen/ files for this repository's protos", async () => {
    const request = await requestFor(
      root,
      repoParameter,
      (name) => !name.startsWith("google/") && !name.startsWith("idempotency/"),
    );
    const { files } = generate(request);
    expect([...files.keys()].sort()).toEqual([
      "demo/v1/bank_idempotency.ts",
      "demo/v1/payments_idempotency.ts",
      "fixture/v1/fixture_idempotency.ts",
    ]);
    for (const [name, content] of files) {
      expect(content, name).toBe(readFileSync(join(root, "gen", name), "utf8"));
    }
  });

  it("emits a static plan per method: field name, auto-fill, safe to retry", async () => {
    const { files } = generate(
      await requestFor(join(fixtures, "clean"), "target=ts", (name) => name.startsWith("shop/")),
    );
    const content = files.get("shop/v1/shop_idempotency.ts") ?? "";
    expect(content).toContain(
      'import { createIdempotentClient, createIdempotentTransport } from "connect-idempotency/client";',
    );
    expect(content).toContain("export function createOrderServiceClient(");
    // The same plan as a transport, for connect-query, limited to the service.
    expect(content).toContain("export function createOrderServiceTransport(");
    expect(content).toMatch(/ {4}options,\n {4}OrderService,\n {2}\);/);
    const table = content.slice(content.indexOf("transport,\n    {"), content.indexOf("    options,"));
    expect(table.split("\n").filter((line) => line.includes(":"))).toEqual([
      '      createOrder: { requestIdField: "requestId", autoFill: true },',
      '      cancelOrder: { requestIdField: "requestId", autoFill: false },',
      "      getOrder: { safeToRetry: true },",
      "      setNote: { safeToRetry: true },",
    ]);
  });

  it("reports every request ID it does not fill in, and why", async () => {
    const request = await requestFor(join(fixtures, "problems"), "target=ts", (name) => name.startsWith("bad/"));
    const { warnings } = generate(request);
    expect(warnings.sort()).toEqual(
      [
        "bad/v1/invalid.proto: bad.v1.MarkService.InOneof: field bad.v1.OneofRequest.request_id is marked as request ID but is part of oneof key; the client does not fill it in",
        "bad/v1/invalid.proto: bad.v1.MarkService.Numeric: field bad.v1.NumericRequest.request_id is marked as request ID but is not a singular string; the client does not fill it in",
        "bad/v1/invalid.proto: bad.v1.MarkService.NumericAgain: field bad.v1.NumericRequest.request_id is marked as request ID but is not a singular string; the client does not fill it in",
        "bad/v1/invalid.proto: bad.v1.MarkService.Repeated: field bad.v1.RepeatedRequest.request_id is marked as request ID but is not a singular string; the client does not fill it in",
        "bad/v1/invalid.proto: bad.v1.MarkService.Twice: message bad.v1.TwiceRequest marks more than one request ID field (request_id, idempotency_key); the client does not fill it in",
        "bad/v1/nested.proto: bad.v1.BookRequest.Leg.leg_id: marked as request ID, but bad.v1.BookRequest.Leg is no method's input; only top-level fields of a request are read",
        "bad/v1/nested.proto: bad.v1.Trip.trip_request_id: marked as request ID, but bad.v1.Trip is no method's input; only top-level fields of a request are read",
        "bad/v1/required.proto: bad.v1.PayoutService.Refund: request ID field request_id is REQUIRED: the client does not fill it in (AIP-4235); callers pass their own",
      ].sort(),
    );
  });

  it("reports streaming methods with a request ID field and leaves them out of the plan", async () => {
    const request = await requestFor(root, repoParameter, (name) => name === "demo/v1/payments.proto");
    const { files, warnings } = generate(request);
    expect(warnings).toContain(
      "demo/v1/payments.proto: demo.v1.PaymentService.WatchPayments: server-streaming method: request ID field request_id is not filled in and calls are not retried",
    );
    expect(files.get("demo/v1/payments_idempotency.ts")).not.toMatch(/watchPayments:/);
  });

  it("refuses an unknown option", async () => {
    const request = await requestFor(join(fixtures, "clean"), "target=ts,runtime=x", (name) =>
      name.startsWith("shop/"),
    );
    expect(() => generate(request)).toThrow(/unknown option runtime=x/);
  });
});
