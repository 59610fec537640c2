import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  defaultIndefiniteCodes,
  defaultReleasedCodes,
  defaultStoredCodes,
  errorDisposition,
  interruptOnError,
  releaseOnError,
  resolveCodeDispositions,
  storeOnError,
} from "../../src/server/error-disposition.js";

const live = new AbortController().signal;

describe("resolveCodeDispositions()", () => {
  it("stores decided codes, interrupts indefinite ones and releases refusals of the caller by default", () => {
    const dispositions = resolveCodeDispositions({});
    for (const code of defaultStoredCodes) expect(dispositions.get(code)).toBe("store");
    for (const code of defaultIndefiniteCodes) expect(dispositions.get(code)).toBe("interrupt");
    expect(defaultReleasedCodes).toEqual([Code.Unauthenticated, Code.PermissionDenied]);
    for (const code of defaultReleasedCodes) expect(dispositions.get(code)).toBe("release");
    expect(dispositions.size).toBe(16);
  });

  it("moves only the codes a list names", () => {
    const dispositions = resolveCodeDispositions({ releasedCodes: [Code.NotFound], indefiniteCodes: [Code.Internal] });
    expect(dispositions.get(Code.NotFound)).toBe("release");
    expect(dispositions.get(Code.Internal)).toBe("interrupt");
    expect(dispositions.get(Code.InvalidArgument)).toBe("store");
    expect(dispositions.get(Code.Unavailable)).toBe("interrupt");
  });
});

describe("errorDisposition()", () => {
  const dispositions = resolveCodeDispositions({});

  it("follows the code, then any mark", () => {
    const error = new ConnectError("x", Code.Unavailable);
    expect(errorDisposition(error, error, dispositions, live)).toBe("interrupt");
    const stored = storeOnError(new ConnectError("x", Code.Unavailable));
    expect(errorDisposition(stored, stored, dispositions, live)).toBe("store");
    const released = releaseOnError(new ConnectError("x", Code.Internal));
    expect(errorDisposition(released, released, dispositions, live)).toBe("release");
    const interrupted = interruptOnError(new ConnectError("x", Code.InvalidArgument));
    expect(errorDisposition(interrupted, interrupted, dispositions, live)).toBe("interrupt");
  });

  it("never stores an error of a call whose client went away", () => {
    const aborted = new AbortController();
    aborted.abort(new ConnectError("http/2 stream closed with error code INTERNAL_ERROR", Code.Internal));
    const error = new ConnectError("http/2 stream closed with error code INTERNAL_ERROR", Code.Internal);
    expect(errorDisposition(error, error, dispositions, aborted.signal)).toBe("interrupt");
  });
});
