import { type Plugin, type Schema, createEcmaScriptPlugin } from "@bufbuild/protoplugin";
import { findIdempotencyExtensions } from "../policy/idempotency-extensions.js";
import { findMisplacedRequestIdMarks } from "../policy/misplaced-request-id-marks.js";
import { readPackageVersion } from "./package-version.js";
import { printServiceClient } from "./print-service-client.js";

/** Options of protoc-gen-connect-idempotency, besides the standard ECMAScript plugin options. */
export interface ConnectIdempotencyPluginOptions {
  /**
   * Where generated files import the runtime from: a package such as the
   * default `connect-idempotency/client`, or a path relative to the output
   * directory, such as `../src/client/index.js`.
   */
  readonly runtimeImport: string;
}

/**
 * Creates the protoc plugin that writes `<file>_idempotency.ts` beside
 * protoc-gen-es's `<file>_pb.ts` for every proto file with services, with a
 * `create<Service>Client` per service. `warn` receives a line for every
 * request ID a generated client does not fill in or cannot use (AIP-4235);
 * the default writes it to stderr, which buf shows.
 */
export function createConnectIdempotencyPlugin(warn: (line: string) => void = writeStderr): Plugin {
  return createEcmaScriptPlugin<ConnectIdempotencyPluginOptions>({
    name: "protoc-gen-connect-idempotency",
    version: `v${readPackageVersion()}`,
    parseOptions,
    generateTs(schema) {
      // Two marked fields of one message make one problem, not two lines.
      const seen = new Set<string>();
      generateClients(schema, (line) => {
        if (!seen.has(line)) {
          seen.add(line);
          warn(line);
        }
      });
    },
  });
}

function generateClients(schema: Schema<ConnectIdempotencyPluginOptions>, warn: (line: string) => void): void {
  // By name, not from gen/: buf deletes the output before a clean generate.
  const ext = findIdempotencyExtensions(schema.allFiles);
  const runtimeImport = schema.options.runtimeImport;
  for (const field of findMisplacedRequestIdMarks(schema.files, schema.allFiles, ext)) {
    warn(
      `${field.parent.file.name}.proto: ${field.parent.typeName}.${field.name}: marked as request ID, but ` +
        `${field.parent.typeName} is no method's input; only top-level fields of a request are read`,
    );
  }
  for (const file of schema.files) {
    if (file.services.length === 0) {
      continue;
    }
    const f = schema.generateFile(`${file.name}_idempotency.ts`);
    f.preamble(file);
    const runtime = {
      createIdempotentClient: f.import("createIdempotentClient", runtimeImport),
      createIdempotentTransport: f.import("createIdempotentTransport", runtimeImport),
      IdempotentClientOptions: f.import("IdempotentClientOptions", runtimeImport, true),
      Client: f.import("Client", "@connectrpc/connect", true),
      Transport: f.import("Transport", "@connectrpc/connect", true),
    };
    for (const service of file.services) {
      printServiceClient(f, service, ext, runtime, (element, message) =>
        warn(`${file.name}.proto: ${element}: ${message}`),
      );
    }
  }
}

function parseOptions(raw: { key: string; value: string }[]): ConnectIdempotencyPluginOptions {
  let runtimeImport = "connect-idempotency/client";
  for (const { key, value } of raw) {
    if (key !== "runtime_import" || value === "") {
      throw new Error(
        `unknown option ${key}${value === "" ? "" : `=${value}`}; supported: runtime_import=<package or path>`,
      );
    }
    runtimeImport = value;
  }
  return { runtimeImport };
}

function writeStderr(line: string): void {
  process.stderr.write(`protoc-gen-connect-idempotency: ${line}\n`);
}
