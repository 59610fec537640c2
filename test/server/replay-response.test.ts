import { create } from "@bufbuild/protobuf";
import { createContextValues, type UnaryRequest } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { CreatePaymentResponseSchema, PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { createReplayResponse } from "../../src/server/replay-response.js";

// The HTTP tests in replay-protocols.test.ts prove that replays work on every
// protocol. They cannot prove that the gRPC encoding is negotiated right:
// connect's copyHeaders deletes headers while iterating them, so the
// prepared grpc-encoding happens to survive a missing one. Hence this check.
function request(
  header: Record<string, string>,
  requestMethod = "POST",
  url = "http://h/demo.v1.PaymentService/CreatePayment",
): UnaryRequest {
  return {
    stream: false,
    service: PaymentService,
    method: PaymentService.method.createPayment,
    requestMethod,
    url,
    signal: new AbortController().signal,
    header: new Headers(header),
    contextValues: createContextValues(),
    message: create(PaymentService.method.createPayment.input),
  } as UnaryRequest;
}

function replayHeaders(req: UnaryRequest, compressions = ["gzip", "br"]) {
  const response = createReplayResponse(
    req,
    create(CreatePaymentResponseSchema),
    new Headers({ "x-handler": "h" }),
    new Headers({ "x-trailer": "t" }),
    compressions,
  );
  return { header: Object.fromEntries(response.header), trailer: Object.fromEntries(response.trailer) };
}

describe("createReplayResponse", () => {
  it.each([
    ["application/proto", "application/proto"],
    ["application/json", "application/json"],
    ["application/json; charset=utf-8", "application/json"],
  ])("answers a Connect request of %s with %s", (contentType, expected) => {
    expect(replayHeaders(request({ "content-type": contentType }))).toEqual({
      header: { "content-type": expected, "x-handler": "h", "idempotency-replayed": "true" },
      trailer: { "x-trailer": "t" },
    });
  });

  it("answers a Connect GET request in the codec of its query", () => {
    const url = "http://h/demo.v1.PaymentService/CreatePayment?connect=v1&encoding=json&message=%7B%7D";
    expect(replayHeaders(request({}, "GET", url)).header["content-type"]).toBe("application/json");
    const proto = "http://h/demo.v1.PaymentService/CreatePayment?connect=v1&encoding=proto&message=";
    expect(replayHeaders(request({}, "GET", proto)).header["content-type"]).toBe("application/proto");
  });

  it.each([
    ["application/grpc", "application/grpc+proto"],
    ["application/grpc+proto", "application/grpc+proto"],
    ["application/grpc+json", "application/grpc+json"],
    ["application/grpc-web+proto", "application/grpc-web+proto"],
    ["application/grpc-web+json", "application/grpc-web+json"],
  ])("answers a gRPC request of %s with %s and grpc-status 0", (contentType, expected) => {
    expect(replayHeaders(request({ "content-type": contentType }))).toEqual({
      header: { "content-type": expected, "x-handler": "h", "idempotency-replayed": "true" },
      trailer: { "grpc-status": "0", "x-trailer": "t" },
    });
  });

  it.each([
    // The client's first accepted encoding that the server has.
    [{ "grpc-accept-encoding": "gzip, br" }, ["br", "gzip"], "gzip"],
    [{ "grpc-accept-encoding": "br,gzip" }, ["gzip", "br"], "br"],
    [{ "grpc-accept-encoding": "zstd, br" }, ["gzip"], undefined],
    // Without a list, the request's own encoding, if the server has it.
    [{ "grpc-encoding": "gzip" }, ["gzip"], "gzip"],
    [{ "grpc-encoding": "gzip", "grpc-accept-encoding": "" }, ["br"], undefined],
    [{ "grpc-encoding": "identity" }, ["gzip"], undefined],
    [{}, ["gzip", "br"], undefined],
  ])("negotiates grpc-encoding for %j with server compressions %j: %s", (header, compressions, expected) => {
    for (const contentType of ["application/grpc+proto", "application/grpc-web+json"]) {
      const seen = replayHeaders(request({ "content-type": contentType, ...header }), compressions);
      expect(seen.header["grpc-encoding"]).toBe(expected);
    }
  });
});
