import type { DescField, DescMethod } from "@bufbuild/protobuf";
import { getComments } from "@bufbuild/protoplugin";

/** Where an element is declared in its proto file; 1-based, 0 when the file has no source info. */
export interface SourceLocation {
  readonly line: number;
  readonly column: number;
}

/** The declaration's location, from the file's `source_code_info`. */
export function findSourceLocation(desc: DescField | DescMethod): SourceLocation {
  const path = getComments(desc).sourcePath;
  const location = desc.parent.file.proto.sourceCodeInfo?.location.find(
    (l) => l.path.length === path.length && l.path.every((n, i) => n === path[i]),
  );
  const [line, column] = location?.span ?? [];
  return line === undefined || column === undefined ? { line: 0, column: 0 } : { line: line + 1, column: column + 1 };
}

const ignorePattern = /connect-idempotency:lint:ignore\s+([A-Z0-9_]+)/g;

/**
 * Whether the element's leading comment turns a lint rule off for it, as in
 * `// connect-idempotency:lint:ignore METHOD_WITHOUT_REQUEST_ID`.
 */
export function isLintIgnored(desc: DescField | DescMethod, rule: string): boolean {
  const leading = getComments(desc).leading ?? "";
  return [...leading.matchAll(ignorePattern)].some((match) => match[1] === rule);
}
