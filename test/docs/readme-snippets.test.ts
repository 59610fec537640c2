import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { findMarkdownFiles } from "./markdown-links.js";

// A code block preceded by `<!-- file: PATH -->` shows PATH exactly, so the
// docs cannot drift from the examples that test/examples/ runs.

const repo = resolve(import.meta.dirname, "../..");

interface FileBlock {
  readonly markdown: string;
  readonly path: string;
  readonly body: string;
}

function fileBlocks(markdownPath: string): FileBlock[] {
  const text = readFileSync(markdownPath, "utf8");
  return [...text.matchAll(/<!-- file: (\S+) -->\n```\w*\n([\s\S]*?)^```$/gm)].map((m) => ({
    markdown: markdownPath.slice(repo.length + 1),
    path: m[1]!,
    body: m[2]!,
  }));
}

describe("docs snippets", () => {
  const blocks = findMarkdownFiles(repo).flatMap(fileBlocks);

  it("the README's quick start shows every source file of examples/quickstart", () => {
    const shown = blocks.filter((b) => b.markdown === "README.md").map((b) => b.path);
    expect(shown).toEqual([
      "examples/quickstart/proto/shop/v1/shop.proto",
      "examples/quickstart/buf.yaml",
      "examples/quickstart/buf.gen.yaml",
      "examples/quickstart/server.ts",
      "examples/quickstart/client.ts",
    ]);
  });

  it("every block marked with a file is that file, byte for byte", () => {
    expect(blocks.length).toBeGreaterThan(0);
    for (const block of blocks) {
      const path = join(repo, block.path);
      expect(existsSync(path), `${block.markdown} shows ${block.path}, which does not exist`).toBe(true);
      expect(block.body, `${block.markdown} shows ${block.path}`).toBe(readFileSync(path, "utf8"));
    }
  });
});
