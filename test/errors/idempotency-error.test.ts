import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ErrorReason } from "../../src/errors/error-reason.js";
import { errorReasonCode } from "../../src/errors/error-reason-code.js";
import { createIdempotencyError, findErrorReason, findRetryDelayMs } from "../../src/errors/idempotency-error.js";

const repo = resolve(import.meta.dirname, "../..");
const reasons = Object.values(ErrorReason);

/** `Code.FailedPrecondition` as the protocol writes it: `FAILED_PRECONDITION`. */
function codeName(code: Code): string {
  return Code[code].replace(/(?<=[a-z])(?=[A-Z])/g, "_").toUpperCase();
}

/** Every .ts file under a directory of the repository. */
function sources(dir: string): string[] {
  return readdirSync(join(repo, dir), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(".ts"))
    .map((entry) => join(entry.parentPath, entry.name));
}

describe("errors from one table", () => {
  it("gives every reason a code", () => {
    expect(Object.keys(errorReasonCode).sort()).toEqual([...reasons].sort());
  });

  it("names each reason's code in its doc", () => {
    const text = readFileSync(join(repo, "src/errors/error-reason.ts"), "utf8");
    for (const reason of reasons) {
      const doc = new RegExp(`/\\*\\*((?:(?!\\*/)[\\s\\S])*)\\*/\\s*${reason}:`).exec(text)?.[1];
      expect(doc, `${reason} has a doc`).toBeDefined();
      expect(doc, `the doc of ${reason}`).toContain(codeName(errorReasonCode[reason]));
    }
  });

  it.each(reasons)("creates %s with the table's code, its reason, and the cause kept", (reason) => {
    const cause = new Error("the store is down");
    const error = createIdempotencyError(reason, "message", { cause, retryDelayMs: 1_500 });
    expect(error).toBeInstanceOf(ConnectError);
    expect(error.code).toBe(errorReasonCode[reason]);
    expect(findErrorReason(error)).toBe(reason);
    expect(findRetryDelayMs(error)).toBe(1_500);
    expect(error.cause).toBe(cause);
    expect(error.rawMessage).toBe("message");
  });

  it("is the only maker of ErrorInfo details in src/", () => {
    const makers = sources("src").filter((file) => readFileSync(file, "utf8").includes("ErrorInfoSchema, {"));
    expect(makers.map((file) => file.slice(repo.length + 1))).toEqual(["src/errors/idempotency-error.ts"]);
  });
});
