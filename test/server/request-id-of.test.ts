import { create, type DescMethodUnary } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type UnaryRequest } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { FixtureService } from "../../gen/fixture/v1/fixture_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { ErrorReason } from "../../src/errors/error-reason.js";
import { findErrorReason } from "../../src/errors/idempotency-error.js";
import { resolveMethodPolicy } from "../../src/policy/method-policy.js";
import { runtimeExtensions } from "../../src/policy/runtime-extensions.js";
import { requestIdOf } from "../../src/server/request-id-of.js";

/** Reads the request ID of a call of `method` whose request ID field holds `id`, as the interceptor does. */
function readId(method: DescMethodUnary, id: string): string | undefined {
  const policy = resolveMethodPolicy(method, runtimeExtensions);
  const field = policy.requestIdField;
  if (field === undefined) {
    throw new Error(`${method.name} has no request ID field`);
  }
  const req = {
    stream: false,
    service: method.parent,
    method,
    requestMethod: "POST",
    url: `http://localhost/${method.parent.typeName}/${method.name}`,
    signal: new AbortController().signal,
    header: new Headers(),
    contextValues: createContextValues(),
    message: create(method.input, { [field.localName]: id } as never),
  } as UnaryRequest;
  return requestIdOf(req, policy, field);
}

/** The code, reason, message and ErrorInfo `field` of what reading the request ID throws. */
function refusal(method: DescMethodUnary, id: string) {
  try {
    readId(method, id);
  } catch (error) {
    if (!(error instanceof ConnectError)) throw error;
    return {
      code: error.code,
      reason: findErrorReason(error),
      message: error.rawMessage,
      field: error.findDetails(ErrorInfoSchema)[0]?.metadata.field,
    };
  }
  throw new Error(`expected ${JSON.stringify(id)} to be refused`);
}

const createPayment = PaymentService.method.createPayment;
const refundPayment = PaymentService.method.refundPayment;
const opaque = FixtureService.method.opaque;

describe("requestIdOf()", () => {
  it("has no request ID for an empty field on a method that does not require one: the call runs without deduplication", () => {
    expect(readId(createPayment, "")).toBeUndefined();
  });

  it("refuses an empty field with INVALID_ARGUMENT REQUEST_ID_REQUIRED on a method that requires a request ID", () => {
    expect(refusal(refundPayment, "")).toEqual({
      code: Code.InvalidArgument,
      reason: ErrorReason.REQUEST_ID_REQUIRED,
      message: "demo.v1.PaymentService.RefundPayment requires a request ID in field request_id",
      field: "request_id",
    });
  });

  it("gives a UUID in lowercase, so that its case never makes two keys of one request", () => {
    const id = "3F0C8D4E-5B7A-4C1E-9D2F-6A8B0C1D2E3F";
    expect(readId(createPayment, id)).toBe(id.toLowerCase());
    expect(readId(createPayment, id.toLowerCase())).toBe(id.toLowerCase());
    expect(readId(refundPayment, id)).toBe(id.toLowerCase());
  });

  it.each([
    ["not a UUID", "not-a-uuid"],
    ["a UUID without dashes", "3f0c8d4e5b7a4c1e9d2f6a8b0c1d2e3f"],
    ["a UUID in braces", "{3f0c8d4e-5b7a-4c1e-9d2f-6a8b0c1d2e3f}"],
    ["a UUID with a trailing space", "3f0c8d4e-5b7a-4c1e-9d2f-6a8b0c1d2e3f "],
  ])("refuses %s with INVALID_ARGUMENT REQUEST_ID_INVALID on a UUID method", (_, id) => {
    expect(refusal(createPayment, id)).toEqual({
      code: Code.InvalidArgument,
      reason: ErrorReason.REQUEST_ID_INVALID,
      message: "the request ID in field request_id must be a UUID such as 3f0c8d4e-5b7a-4c1e-9d2f-6a8b0c1d2e3f",
      field: "request_id",
    });
  });

  it("refuses the nil UUID", () => {
    expect(refusal(createPayment, "00000000-0000-0000-0000-000000000000")).toMatchObject({
      reason: ErrorReason.REQUEST_ID_INVALID,
      message: "the request ID in field request_id must not be the nil UUID",
    });
  });

  it("keeps an opaque key as it is, case included, from 1 to 255 printable ASCII characters", () => {
    for (const id of ["K", "Order 42/Retry", "x".repeat(255), " ~"]) {
      expect(readId(opaque, id)).toBe(id);
    }
  });

  it.each([
    ["256 characters", "x".repeat(256)],
    ["a tab", "tab\there"],
    ["a non-ASCII letter", "caf\u00e9"],
    ["a newline", "line\n"],
  ])("refuses an opaque key with %s", (_, id) => {
    expect(refusal(opaque, id)).toEqual({
      code: Code.InvalidArgument,
      reason: ErrorReason.REQUEST_ID_INVALID,
      message: "the request ID in field key must be 1 to 255 printable ASCII characters",
      field: "key",
    });
  });
});
