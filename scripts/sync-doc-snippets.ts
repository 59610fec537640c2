// Copies each file that a Markdown code block shows (a block preceded by
// `<!-- file: PATH -->`) into that block, so the docs show the file byte for
// byte again after `biome format` or an edit of examples/. Biome does not
// format Markdown here (biome.jsonc); test/docs/readme-snippets.test.ts checks
// the result. Run: npm run docs:snippets (`npm run format` runs it too).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { findMarkdownFiles } from "../test/docs/markdown-links.js";

const repo = resolve(import.meta.dirname, "..");
// The same block syntax the snippet test reads.
const fileBlock = /(<!-- file: (\S+) -->\n```\w*\n)([\s\S]*?)^```$/gm;

let changed = 0;
for (const markdownPath of findMarkdownFiles(repo)) {
  const markdown = relative(repo, markdownPath);
  const text = readFileSync(markdownPath, "utf8");
  const synced = text.replace(fileBlock, (block: string, opening: string, path: string, body: string) => {
    const file = join(repo, path);
    if (!existsSync(file)) {
      throw new Error(`sync-doc-snippets: ${markdown} shows ${path}, which does not exist`);
    }
    const content = readFileSync(file, "utf8");
    if (!content.endsWith("\n") || /^```/m.test(content)) {
      throw new Error(`sync-doc-snippets: ${path} must end with a newline and hold no line starting with \`\`\``);
    }
    if (content === body) {
      return block;
    }
    changed++;
    console.log(`${markdown}: ${path}`);
    return `${opening}${content}\`\`\``;
  });
  if (synced !== text) {
    writeFileSync(markdownPath, synced);
  }
}
console.log(
  changed === 0
    ? "doc snippets: all blocks match their files"
    : `doc snippets: ${changed} block${changed === 1 ? "" : "s"} updated`,
);
