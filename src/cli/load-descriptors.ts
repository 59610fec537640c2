import { existsSync } from "node:fs";
import { join } from "node:path";
import { createRegistry, type Registry } from "@bufbuild/protobuf";
import { createCliError } from "./cli-error.js";
import { buildWorkspaceImage, readImageFile } from "./schema-image.js";

/** Where `keys show` finds the types to decode stored responses with. */
export interface DescriptorSource {
  /** An image from `buf build -o FILE`, or any binary FileDescriptorSet. */
  readonly image?: string;
  /** A buf workspace to run `buf build` in. */
  readonly protoDir?: string;
  /** Tried with `buf build` when neither is given and it holds a buf.yaml. */
  readonly cwd: string;
}

/** The descriptors found, or why there are none. */
export type LoadedDescriptors =
  | { readonly kind: "found"; readonly registry: Registry }
  | { readonly kind: "none"; readonly reason: string };

/**
 * Loads descriptors for decoding stored responses. An image or a proto
 * directory the operator named must load, or the command fails with exit
 * status 2; the current directory is only a guess, so a failure there
 * yields `none` and the outcome is shown raw.
 */
export async function loadDescriptors(source: DescriptorSource): Promise<LoadedDescriptors> {
  if (source.image !== undefined || source.protoDir !== undefined) {
    const loaded =
      source.image !== undefined
        ? await readImageFile(source.image)
        : await buildWorkspaceImage(source.protoDir as string);
    if (!loaded.ok) {
      throw createCliError(loaded.problem);
    }
    return { kind: "found", registry: createRegistry(...loaded.image.allFiles) };
  }
  if (!existsSync(join(source.cwd, "buf.yaml"))) {
    return { kind: "none", reason: "no --image or --proto-dir, and no buf.yaml in the current directory" };
  }
  const built = await buildWorkspaceImage(source.cwd);
  return built.ok
    ? { kind: "found", registry: createRegistry(...built.image.allFiles) }
    : { kind: "none", reason: built.problem.split("\n")[0] ?? built.problem };
}
