import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

/** A relative link of a Markdown file that does not resolve. */
export interface BrokenLink {
  /** The file holding the link, relative to the root. */
  file: string;
  line: number;
  target: string;
  problem: string;
}

const skippedFolders = new Set(["node_modules", ".git", "dist", ".data", "gen"]);

/** Every `*.md` file under `root`, skipping dependencies, builds and generated code. */
export function findMarkdownFiles(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) {
        if (!skippedFolders.has(entry.name)) walk(join(dir, entry.name));
      } else if (entry.name.endsWith(".md")) {
        found.push(join(dir, entry.name));
      }
    }
  };
  walk(root);
  return found.sort();
}

/**
 * The anchor GitHub gives a heading: lowercase, punctuation other than `-` and
 * `_` removed, spaces turned into hyphens; a repeated heading gets `-1`, `-2`.
 */
export function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const { text } of proseLines(markdown)) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(text);
    const explicit = text.matchAll(/<a\s+(?:id|name)="([^"]+)"/g);
    for (const m of explicit) anchors.add(m[1]!);
    if (!heading) continue;
    const base = heading[1]!
      .replace(/<[^>]+>/g, "")
      .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/\s/g, "-");
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

/** The lines outside fenced code blocks, with inline code removed. */
function proseLines(markdown: string): { text: string; line: number }[] {
  const out: { text: string; line: number }[] = [];
  let fence: string | undefined;
  markdown.split("\n").forEach((raw, i) => {
    const opener = /^\s*(```+|~~~+)/.exec(raw);
    if (opener) {
      if (fence === undefined) fence = opener[1]!;
      else if (opener[1]!.startsWith(fence)) fence = undefined;
      return;
    }
    if (fence === undefined) {
      out.push({ text: raw.replace(/`[^`]*`/g, (code) => (/^#/.test(raw) ? code.slice(1, -1) : "")), line: i + 1 });
    }
  });
  return out;
}

/** The link targets of a Markdown text: inline links and images, outside code. */
export function linkTargets(markdown: string): { target: string; line: number }[] {
  const out: { target: string; line: number }[] = [];
  for (const { text, line } of proseLines(markdown)) {
    for (const m of text.matchAll(/!?\[(?:[^\]]|\][^(])*?\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      out.push({ target: m[1]!, line });
    }
  }
  return out;
}

/**
 * Checks every relative link of the given Markdown files: the file or folder
 * it names exists, and its `#anchor`, if any, is a heading of the Markdown
 * file it points to. Links with a scheme (`https:`, `mailto:`) are not checked.
 */
export function checkMarkdownLinks(root: string, files: string[]): BrokenLink[] {
  const broken: BrokenLink[] = [];
  const anchorCache = new Map<string, Set<string>>();
  const anchorsOf = (path: string): Set<string> => {
    let anchors = anchorCache.get(path);
    if (!anchors) {
      anchors = headingAnchors(readFileSync(path, "utf8"));
      anchorCache.set(path, anchors);
    }
    return anchors;
  };
  for (const file of files) {
    for (const { target, line } of linkTargets(readFileSync(file, "utf8"))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
      const report = (problem: string) => broken.push({ file: relative(root, file), line, target, problem });
      const [pathPart, anchor] = splitOnce(target, "#");
      const path = pathPart === "" ? file : resolve(dirname(file), decodeURIComponent(pathPart));
      if (!existsSync(path)) {
        report("no such file");
        continue;
      }
      if (anchor === undefined || anchor === "") continue;
      if (statSync(path).isDirectory() || !path.endsWith(".md")) {
        if (!/^L\d+(-L\d+)?$/.test(anchor)) report("anchor on a file that is not Markdown");
        continue;
      }
      if (!anchorsOf(path).has(decodeURIComponent(anchor))) report(`no heading #${anchor}`);
    }
  }
  return broken;
}

function splitOnce(s: string, sep: string): [string, string | undefined] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, undefined] : [s.slice(0, i), s.slice(i + 1)];
}
