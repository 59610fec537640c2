import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach } from "vitest";

/** The current test's temporary folder and what to close after it, from `usePerTestScratch`. */
export interface PerTestScratch {
  /** A folder of the current test's own. */
  readonly dir: string;
  /** Has `close` run after the current test, with the others at once, before the folder is removed. */
  closeAfter(close: () => Promise<unknown>): void;
}

/**
 * Gives each test of the calling file a new temporary folder (named with
 * `prefix`), and after the test closes what it registered with
 * `closeAfter` (servers, child processes) and removes the folder. Call it at
 * the top of a file.
 */
export function usePerTestScratch(prefix: string): PerTestScratch {
  let dir: string | undefined;
  let closers: (() => Promise<unknown>)[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
    closers = [];
  });
  afterEach(async () => {
    await Promise.all(closers.map((close) => close()));
    if (dir !== undefined) {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  return {
    get dir() {
      if (dir === undefined) {
        throw new Error("the test scratch folder is used outside a test");
      }
      return dir;
    },
    closeAfter(close) {
      closers.push(close);
    },
  };
}
