import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { StoredOutcomeSchema } from "../../gen/idempotency/v1/stored_outcome_pb.js";
import { decodeStoredOutcome, encodeStoredOutcome } from "../../src/protocol/index.js";
import { isProtocolHeader } from "../../src/server/protocol-headers.js";

describe("stored outcome", () => {
  it("round-trips an execution kept without its response, and never stores the idempotency headers", () => {
    const bytes = encodeStoredOutcome({ kind: "executed", resourceName: "payments/pay_1" });
    const stored = fromBinary(StoredOutcomeSchema, bytes);
    expect(stored.result).toEqual({
      case: "executed",
      value: expect.objectContaining({ resourceName: "payments/pay_1" }),
    });
    expect(decodeStoredOutcome(bytes)).toEqual({ kind: "executed", resourceName: "payments/pay_1" });
    const response = encodeStoredOutcome({
      kind: "response",
      response: new Uint8Array(),
      header: new Headers({ "idempotency-expires": "2026-12-01T00:00:00.000Z", "x-a": "1" }),
      trailer: new Headers(),
    });
    expect(fromBinary(StoredOutcomeSchema, response).header.map((h) => h.name)).toEqual(["x-a"]);
  });

  it("round-trips a response with the handler's headers and trailers, dropping protocol headers", () => {
    const bytes = encodeStoredOutcome({
      kind: "response",
      response: new Uint8Array([10, 3, 97, 98, 99]),
      header: new Headers({
        "content-type": "application/grpc+proto",
        "grpc-encoding": "gzip",
        "connect-content-encoding": "gzip",
        "x-region": "eu",
        "idempotency-replayed": "true",
      }),
      trailer: new Headers({ "grpc-status": "0", "grpc-message": "", "x-ledger": "7", "trailer-x": "y" }),
    });
    const stored = fromBinary(StoredOutcomeSchema, bytes);
    expect(stored.header.map((h) => [h.name, h.value])).toEqual([["x-region", "eu"]]);
    expect(stored.trailer.map((h) => [h.name, h.value])).toEqual([["x-ledger", "7"]]);
    const decoded = decodeStoredOutcome(bytes);
    expect(decoded.kind).toBe("response");
    if (decoded.kind === "response") {
      expect(decoded.response).toEqual(new Uint8Array([10, 3, 97, 98, 99]));
      expect([...decoded.header]).toEqual([["x-region", "eu"]]);
      expect([...decoded.trailer]).toEqual([["x-ledger", "7"]]);
    }
  });

  it("round-trips an error with code, raw message, outgoing and incoming details, and metadata", () => {
    const metadata = { "x-decline": "51", "content-type": "application/json" };
    const error = new ConnectError("card declined", Code.FailedPrecondition, metadata, [
      { desc: ErrorInfoSchema, value: { reason: "CARD_DECLINED", domain: "bank.example" } },
    ]);
    // As a ConnectError that came over the wire carries its details.
    error.details.push({
      type: RetryInfoSchema.typeName,
      value: toBinary(RetryInfoSchema, create(RetryInfoSchema, { retryDelay: { seconds: 3n } })),
    });
    const decoded = decodeStoredOutcome(encodeStoredOutcome({ kind: "error", error }));
    if (decoded.kind !== "error") {
      throw new Error("expected an error");
    }
    expect(decoded.error.code).toBe(Code.FailedPrecondition);
    expect(decoded.error.rawMessage).toBe("card declined");
    expect(decoded.error.findDetails(ErrorInfoSchema)[0]).toMatchObject({
      reason: "CARD_DECLINED",
      domain: "bank.example",
    });
    expect(decoded.error.findDetails(RetryInfoSchema)[0]?.retryDelay?.seconds).toBe(3n);
    expect([...decoded.error.metadata]).toEqual([["x-decline", "51"]]);
  });

  it("writes a response outcome with exactly the bytes toBinary writes for the same StoredOutcome", () => {
    const cases: { response: Uint8Array; header: [string, string][]; trailer: [string, string][] }[] = [
      { response: new Uint8Array(0), header: [], trailer: [] },
      { response: new Uint8Array(200).fill(3), header: [], trailer: [] },
      // Only protocol headers, which are left out: lengths of one, two and three varint bytes.
      {
        response: new Uint8Array(127).fill(1),
        header: [["content-type", "application/proto"]],
        trailer: [["grpc-status", "0"]],
      },
      { response: new Uint8Array(16_384).fill(2), header: [["grpc-encoding", "gzip"]], trailer: [] },
      { response: new Uint8Array([10, 3, 97, 98, 99]), header: [["x-region", "eu"]], trailer: [] },
      {
        response: new Uint8Array(300).fill(9),
        header: [
          ["x-empty", ""],
          ["x-latin1", "gr\u00fc\u00dfe"],
          ["content-type", "application/proto"],
          ["set-cookie", "a=1"],
          ["set-cookie", "b=2"],
        ],
        trailer: [
          ["grpc-status", "0"],
          ["x-ledger", "7"],
        ],
      },
    ];
    for (const { response, header, trailer } of cases) {
      const headers = new Headers(header);
      const trailers = new Headers(trailer);
      const reflective = toBinary(
        StoredOutcomeSchema,
        create(StoredOutcomeSchema, {
          result: { case: "response", value: response },
          header: [...headers].filter(([name]) => !isProtocolHeader(name)).map(([name, value]) => ({ name, value })),
          trailer: [...trailers].filter(([name]) => !isProtocolHeader(name)).map(([name, value]) => ({ name, value })),
        }),
      );
      expect(encodeStoredOutcome({ kind: "response", response, header: headers, trailer: trailers })).toEqual(
        reflective,
      );
    }
  });

  it("refuses bytes that are not a stored outcome with a result", () => {
    expect(() => decodeStoredOutcome(new Uint8Array(0))).toThrow("stored outcome has neither a response nor an error");
    expect(() => decodeStoredOutcome(new Uint8Array([0xff, 0xff, 0xff]))).toThrow();
  });
});
