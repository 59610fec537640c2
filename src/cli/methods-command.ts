import { type Command, Option } from "commander";
import { findIdempotencyExtensions } from "../policy/idempotency-extensions.js";
import { resolveMethodPolicy } from "../policy/method-policy.js";
import { formatDuration } from "./duration-text.js";
import { formatTable } from "./format-table.js";
import { buildWorkspaceImage, readImageFile, type SchemaImage } from "./schema-image.js";

/** Options of `connect-idempotency methods`. */
export interface MethodsOptions {
  /** The buf workspace to build; default the current directory. */
  readonly path: string;
  /** A buf image or FileDescriptorSet to read instead of building. */
  readonly image?: string | undefined;
  /** Print JSON for scripts. */
  readonly json?: boolean | undefined;
}

/** How the interceptor treats one unary method, as `methods` lists it. */
export interface MethodView {
  /** `package.Service/Method`, as records name it. */
  readonly method: string;
  /** `request_id <field>`, `natural <paths>`, or `none`. */
  readonly key: string;
  /** `replay` or `reject`; `default` when the method leaves it to the interceptor's `onDuplicate`. */
  readonly onDuplicate: "replay" | "reject" | "default";
  /** The method's own retention in milliseconds, if it sets one. */
  readonly retentionMs: number | undefined;
  /** The method's own tombstone period in milliseconds (0: none), if it sets one. */
  readonly tombstoneRetentionMs: number | undefined;
  /** The fields left out of the fingerprint. */
  readonly fingerprintExclude: readonly string[];
}

/**
 * Lists the unary methods of a buf workspace's own files with what the
 * interceptor does for them: their key (request ID field or natural key),
 * duplicate mode, retention, tombstone period and fingerprint exclusions.
 */
export function describeMethods(image: SchemaImage): MethodView[] {
  const ext = findIdempotencyExtensions(image.allFiles);
  const views: MethodView[] = [];
  for (const file of image.ownFiles) {
    for (const service of file.services) {
      for (const method of service.methods) {
        if (method.methodKind !== "unary") {
          continue;
        }
        const policy = resolveMethodPolicy(method, ext);
        views.push({
          method: `${service.typeName}/${method.name}`,
          key:
            policy.requestIdField !== undefined
              ? `request_id ${policy.requestIdField.name}`
              : policy.keyFields !== undefined
                ? `natural ${policy.keyFields.map((k) => k.path).join(",")}`
                : "none",
          onDuplicate: policy.duplicateMode ?? "default",
          retentionMs: policy.retentionMs,
          tombstoneRetentionMs: policy.tombstoneRetentionMs,
          fingerprintExclude: policy.fingerprintExclude.map((p) => p.path),
        });
      }
    }
  }
  return views;
}

/** Adds `connect-idempotency methods`. */
export function addMethodsCommand(program: Command): void {
  program
    .command("methods")
    .description(
      "list the unary methods of a buf workspace with their key, duplicate mode, retention, tombstone period and fingerprint exclusions",
    )
    .option("--path <dir>", "the buf workspace to build with `buf build`", ".")
    .addOption(new Option("--image <file>", "read a buf image or FileDescriptorSet (binary) instead").conflicts("path"))
    .option("--json", "print JSON for scripts instead of a table")
    .action(async (options: MethodsOptions) => {
      const loaded =
        options.image !== undefined ? await readImageFile(options.image) : await buildWorkspaceImage(options.path);
      if (!loaded.ok) {
        process.stderr.write(`connect-idempotency methods: ${loaded.problem}\n`);
        process.exitCode = 2;
        return;
      }
      const views = describeMethods(loaded.image);
      process.stdout.write(
        options.json === true
          ? `${JSON.stringify({ methods: views }, null, 2)}\n`
          : `${formatTable(
              ["METHOD", "KEY", "ON DUPLICATE", "RETENTION", "TOMBSTONE", "FINGERPRINT EXCLUDES"],
              views.map((v) => [
                v.method,
                v.key,
                v.onDuplicate,
                v.retentionMs === undefined ? "default" : formatDuration(v.retentionMs),
                v.tombstoneRetentionMs === undefined
                  ? "default"
                  : v.tombstoneRetentionMs === 0
                    ? "none"
                    : formatDuration(v.tombstoneRetentionMs),
                v.fingerprintExclude.join(",") || "-",
              ]),
            )}\n`,
      );
    });
}
