import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ErrorReason } from "../../src/errors/error-reason.js";
import { findErrorReason } from "../../src/errors/idempotency-error.js";
import { encodeOutcome, storedForm } from "../../src/server/outcome-form.js";
import { decodeStoredOutcome } from "../../src/server/stored-outcome.js";
import { useStepHarness } from "../support/dedupe-call-fixture.js";

const { open } = useStepHarness();

const response = (size: number) => ({
  kind: "response" as const,
  response: new Uint8Array(size),
  header: new Headers(),
  trailer: new Headers(),
});

describe("encodeOutcome()", () => {
  it("encodes a response without a code, and an error with its code", () => {
    expect(encodeOutcome(() => response(3)).code).toBeUndefined();
    const form = encodeOutcome(() => ({ kind: "error", error: new ConnectError("no", Code.NotFound) }));
    expect(form.code).toBe(Code.NotFound);
    const decoded = decodeStoredOutcome(form.bytes);
    expect(decoded.kind === "error" && [decoded.error.code, decoded.error.rawMessage]).toEqual([Code.NotFound, "no"]);
  });

  it("stores an outcome that cannot be encoded as connect's internal error, so that the claim still ends", () => {
    const form = encodeOutcome(() => {
      throw new TypeError("cannot encode field payment");
    });
    expect(form.code).toBe(Code.Internal);
    const decoded = decodeStoredOutcome(form.bytes);
    expect(decoded.kind === "error" && [decoded.error.code, decoded.error.rawMessage]).toEqual([
      Code.Internal,
      "internal error",
    ]);
  });
});

describe("storedForm()", () => {
  it("keeps an outcome of up to maxStoredBytes as it is", async () => {
    const h = open({ maxStoredBytes: 64 });
    const call = await h.call();
    let size = 1;
    while (encodeOutcome(() => response(size + 1)).bytes.byteLength <= 64) size++;
    const encoded = encodeOutcome(() => response(size));
    expect(encoded.bytes.byteLength).toBe(64);
    expect(storedForm(call, encoded)).toBe(encoded);
    expect(h.events).toEqual([]);
  });

  it("keeps FAILED_PRECONDITION RESPONSE_TOO_LARGE instead of a larger outcome, so that a retry learns it ran", async () => {
    const h = open({ maxStoredBytes: 64 });
    const call = await h.call();
    const encoded = encodeOutcome(() => response(100));
    const form = storedForm(call, encoded);
    expect(form.code).toBe(Code.FailedPrecondition);
    const decoded = decodeStoredOutcome(form.bytes);
    if (decoded.kind !== "error") throw new Error("expected an error outcome");
    expect(findErrorReason(decoded.error)).toBe(ErrorReason.RESPONSE_TOO_LARGE);
    expect(decoded.error.rawMessage).toContain(`(${encoded.bytes.byteLength} bytes)`);
    expect(h.events).toMatchObject([{ type: "too_large", responseBytes: encoded.bytes.byteLength }]);
  });
});
