import { type Command, Option } from "commander";
import { findIdempotencyExtensions } from "../policy/idempotency-extensions.js";
import { type LintFinding, lintIdempotencySchema } from "./lint-idempotency-schema.js";
import { type SchemaImage, buildWorkspaceImage, readImageFile } from "./schema-image.js";

/** Options of `connect-idempotency lint`. */
export interface LintOptions {
  /** The buf workspace to build; default the current directory. */
  readonly path: string;
  /** A buf image or FileDescriptorSet to read instead of building. */
  readonly image?: string | undefined;
  /** `text`: one `path:line:column: RULE: message` line per finding; `json`: `{"findings": [...]}`. */
  readonly format: "text" | "json";
}

/** Where `runLint` writes. */
export interface LintIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

/** Exit status of `connect-idempotency lint`. */
export const LintExit = {
  /** No problems. */
  CLEAN: 0,
  /** The schema has problems. */
  PROBLEMS: 1,
  /** The schema could not be read: no such directory, buf failed, unreadable image, bad arguments. */
  BAD_INPUT: 2,
} as const;

/**
 * Lints the idempotency marks of a schema (see `lintIdempotencySchema`) and
 * reports each finding with its file and line, as text or JSON. Resolves to
 * the exit status (`LintExit`).
 */
export async function runLint(options: LintOptions, io: LintIo): Promise<number> {
  const loaded =
    options.image !== undefined ? await readImageFile(options.image) : await buildWorkspaceImage(options.path);
  if (!loaded.ok) {
    io.stderr.write(`connect-idempotency lint: ${loaded.problem}\n`);
    return LintExit.BAD_INPUT;
  }
  const { image } = loaded;
  const findings = lintIdempotencySchema(image.ownFiles, image.allFiles, findIdempotencyExtensions(image.allFiles));
  if (options.format === "json") {
    io.stdout.write(`${JSON.stringify({ findings: findings.map((f) => toJson(f, image)) }, null, 2)}\n`);
  } else {
    for (const finding of findings) {
      io.stdout.write(`${formatPosition(finding, image)}: ${finding.rule}: ${finding.message}\n`);
    }
  }
  const files = new Set(findings.map((f) => f.file)).size;
  io.stderr.write(
    findings.length === 0
      ? `connect-idempotency lint: ${image.ownFiles.length} files, no problems\n`
      : `connect-idempotency lint: ${findings.length} ${findings.length === 1 ? "problem" : "problems"} in ${files} ${files === 1 ? "file" : "files"}\n`,
  );
  return findings.length === 0 ? LintExit.CLEAN : LintExit.PROBLEMS;
}

/** Adds the `lint` subcommand to the CLI program. */
export function addLintCommand(program: Command): void {
  program
    .command("lint")
    .description(
      "Check the idempotency marks of a buf workspace: mutating methods without a request ID, " +
        "request ID marks that cannot work, and key_required that clients would defeat. " +
        "Exit 0 when clean, 1 with problems, 2 when the schema cannot be read.",
    )
    .option("--path <dir>", "the buf workspace to build with `buf build`", ".")
    .addOption(new Option("--image <file>", "read a buf image or FileDescriptorSet (binary) instead").conflicts("path"))
    .addOption(new Option("--format <format>", "output format").choices(["text", "json"]).default("text"))
    .action(async (options: LintOptions) => {
      process.exitCode = await runLint(options, { stdout: process.stdout, stderr: process.stderr });
    });
}

function formatPosition(finding: LintFinding, image: SchemaImage): string {
  const path = image.displayPath(finding.file);
  return finding.line === 0 ? path : `${path}:${finding.line}:${finding.column}`;
}

function toJson(finding: LintFinding, image: SchemaImage) {
  return {
    rule: finding.rule,
    path: image.displayPath(finding.file),
    line: finding.line,
    column: finding.column,
    element: finding.element,
    message: finding.message,
  };
}
