import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { checkMarkdownLinks, findMarkdownFiles, headingAnchors } from "./markdown-links.js";

const repo = resolve(import.meta.dirname, "../..");

describe("docs links", () => {
  it("every relative link and anchor in the repository's Markdown resolves", () => {
    const files = findMarkdownFiles(repo);
    const names = files.map((f) => relative(repo, f));
    expect(names).toContain("README.md");
    expect(names).toContain("docs/README.md");
    expect(checkMarkdownLinks(repo, files)).toEqual([]);
  });
});

describe("checkMarkdownLinks()", () => {
  const dir = mkdtempSync(join(tmpdir(), "md-links-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("gives headings GitHub's anchors", () => {
    const anchors = headingAnchors(
      "# Try it: `npm start`\n## Atomic effects: `commit`, `phase` and `derivedKey`\n## Options\n### Options\n```\n# not a heading\n```\n",
    );
    expect([...anchors]).toEqual([
      "try-it-npm-start",
      "atomic-effects-commit-phase-and-derivedkey",
      "options",
      "options-1",
    ]);
  });

  it("reports a missing file, a missing anchor and an anchor in another page, and ignores code and URLs", () => {
    mkdirSync(join(dir, "docs"), { recursive: true });
    writeFileSync(join(dir, "docs/page.md"), "# Page\n\n## Section two\n");
    writeFileSync(
      join(dir, "README.md"),
      [
        "# Top",
        "[ok](docs/page.md#section-two) [ok](#top) [ok](https://example.com/x.md#nope) [ok](docs/)",
        "[bad](docs/missing.md)",
        "[bad](docs/page.md#section-three)",
        "![bad](#nowhere)",
        "`[code](nope.md)`",
        "```md",
        "[code](nope.md)",
        "```",
      ].join("\n"),
    );
    const broken = checkMarkdownLinks(dir, findMarkdownFiles(dir));
    expect(broken).toEqual([
      { file: "README.md", line: 3, target: "docs/missing.md", problem: "no such file" },
      { file: "README.md", line: 4, target: "docs/page.md#section-three", problem: "no heading #section-three" },
      { file: "README.md", line: 5, target: "#nowhere", problem: "no heading #nowhere" },
    ]);
  });
});
