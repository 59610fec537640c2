import { spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { delimiter, dirname, join, resolve } from "node:path";
import { type DescFile, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { type FileDescriptorProto, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

/** A compiled schema: the files of a buf image or FileDescriptorSet. */
export interface SchemaImage {
  /** Every file, imports included. */
  readonly allFiles: readonly DescFile[];
  /** The user's own files: not imports, as buf marks them in an image. */
  readonly ownFiles: readonly DescFile[];
  /** The path to show for a file, relative to the workspace when known. */
  displayPath(file: DescFile): string;
}

/** An image, or why there is none. */
export type SchemaImageResult =
  | { readonly ok: true; readonly image: SchemaImage }
  | { readonly ok: false; readonly problem: string };

/**
 * Builds the buf workspace in `dir` with `buf build` (keeping source info, for
 * line numbers) and reads the image. `buf` is found in `node_modules/.bin` of
 * `dir` or a parent, else on PATH. Files of modules under `node_modules` (such
 * as this package's `proto/`) count as imports, not as the user's own.
 */
export async function buildWorkspaceImage(dir: string): Promise<SchemaImageResult> {
  const workspace = resolve(dir);
  if (!existsSync(workspace) || !statSync(workspace).isDirectory()) {
    return { ok: false, problem: `${dir} is not a directory` };
  }
  const buf = findBuf(workspace);
  const built = await run(buf, ["build", "--output", "-"], workspace);
  if (!built.ok) {
    return built;
  }
  const image = parseImage(built.stdout);
  if (!image.ok) {
    return image;
  }
  // The image names files as they are imported; buf knows where they live.
  const listed = await run(buf, ["ls-files", "--format", "json"], workspace);
  const paths = new Map<string, string>();
  if (listed.ok) {
    for (const line of listed.stdout.toString("utf8").split("\n")) {
      if (line.trim() !== "") {
        const entry = JSON.parse(line) as { path?: string; import_path?: string };
        if (entry.path !== undefined && entry.import_path !== undefined) {
          paths.set(entry.import_path, entry.path);
        }
      }
    }
  }
  // A module under node_modules (this package's protos, added to the
  // workspace so that the options import offline) is not the user's to lint.
  const installed = (file: DescFile) => /(^|\/)node_modules\//.test(paths.get(`${file.name}.proto`) ?? "");
  return {
    ok: true,
    image: {
      ...image.image,
      ownFiles: image.image.ownFiles.filter((file) => !installed(file)),
      displayPath: (file) => paths.get(`${file.name}.proto`) ?? `${file.name}.proto`,
    },
  };
}

/**
 * Reads a buf image or a FileDescriptorSet (binary) from a file, as written
 * by `buf build -o image.binpb` or `protoc --include_imports
 * --include_source_info -o`. Without buf's marks, every file counts as the
 * user's own.
 */
export async function readImageFile(path: string): Promise<SchemaImageResult> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    return { ok: false, problem: `cannot read image ${path}: ${(error as Error).message}` };
  }
  return parseImage(bytes);
}

function parseImage(bytes: Uint8Array): SchemaImageResult {
  try {
    const set = fromBinary(FileDescriptorSetSchema, bytes);
    if (set.file.length === 0) {
      return { ok: false, problem: "the image contains no files" };
    }
    const allFiles = [...createFileRegistry(set).files];
    return {
      ok: true,
      image: {
        allFiles,
        ownFiles: allFiles.filter((file) => !isBufImport(file.proto)),
        displayPath: (file) => `${file.name}.proto`,
      },
    };
  } catch (error) {
    return { ok: false, problem: `not a buf image or FileDescriptorSet: ${(error as Error).message}` };
  }
}

// buf marks each file of an image with an ImageFileExtension in field 8042;
// its field 1 (is_import) is true for files the workspace only imports.
const bufImageExtension = 8042;

function isBufImport(proto: FileDescriptorProto): boolean {
  for (const unknown of proto.$unknown ?? []) {
    if (unknown.no !== bufImageExtension || unknown.wireType !== WireType.LengthDelimited) {
      continue;
    }
    const reader = new BinaryReader(new BinaryReader(unknown.data).bytes());
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === 1 && wireType === WireType.Varint) {
        return reader.bool();
      }
      reader.skip(wireType);
    }
  }
  return false;
}

function findBuf(dir: string): string {
  for (let current = dir; ; current = dirname(current)) {
    const candidate = join(current, "node_modules", ".bin", "buf");
    if (existsSync(candidate)) {
      return candidate;
    }
    if (dirname(current) === current) {
      break;
    }
  }
  const onPath = (process.env.PATH ?? "").split(delimiter).map((p) => join(p, "buf"));
  return onPath.find((p) => existsSync(p)) ?? "buf";
}

function run(
  command: string,
  args: readonly string[],
  cwd: string,
): Promise<{ readonly ok: true; readonly stdout: Buffer } | { readonly ok: false; readonly problem: string }> {
  return new Promise((done) => {
    const child = spawn(command, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.on("error", (error) =>
      done({ ok: false, problem: `cannot run ${command}: ${error.message}; install @bufbuild/buf or put buf on PATH` }),
    );
    child.on("close", (code) => {
      if (code === 0) {
        done({ ok: true, stdout: Buffer.concat(stdout) });
      } else {
        const message = Buffer.concat(stderr).toString("utf8").trim();
        done({ ok: false, problem: `buf ${args[0]} failed in ${cwd}${message === "" ? "" : `:\n${message}`}` });
      }
    });
  });
}
