import { type JsonValue, create, fromBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { ChargeResponseSchema } from "../../gen/demo/v1/bank_pb.js";
import { PaymentSchema } from "../../gen/demo/v1/payments_pb.js";
import { createJsonPhaseCodec, createMessagePhaseCodec } from "../../src/server/phase-codec.js";

describe("phase results", () => {
  const json = createJsonPhaseCodec<JsonValue>();

  it("keeps JSON values exactly", () => {
    const values = [
      { chargeId: "ch_1", amounts: [1, 2.5, -3e20], nested: { ok: true, none: null } },
      [],
      "ünïcödé ✓",
      0,
      false,
      null,
    ];
    for (const value of values) {
      expect(json.decode(json.encode(value as never), "step")).toEqual(value);
    }
  });

  it("tells a step without a result (undefined) from one that returned null", () => {
    expect(json.decode(json.encode(undefined as never), "step")).toBeUndefined();
    expect(json.decode(json.encode(null as never), "step")).toBeNull();
  });

  it("names the stored type, so that a recorded result says what it is", () => {
    expect(fromBinary(AnySchema, json.encode({ a: 1 } as never)).typeUrl).toBe(
      "type.googleapis.com/google.protobuf.Value",
    );
    const messages = createMessagePhaseCodec(ChargeResponseSchema);
    expect(fromBinary(AnySchema, messages.encode(create(ChargeResponseSchema, { chargeId: "ch_1" }))).typeUrl).toBe(
      "type.googleapis.com/demo.v1.ChargeResponse",
    );
  });

  it("keeps what JSON.stringify keeps, on the first run as on a resumed one", () => {
    const value = { n: Number.NaN, inf: [Number.POSITIVE_INFINITY], gone: undefined, when: new Date(0) };
    expect(json.decode(json.encode(value as never), "step")).toEqual({
      n: null,
      inf: [null],
      when: "1970-01-01T00:00:00.000Z",
    });
  });

  it("refuses a protobuf message without its schema", () => {
    expect(() => json.encode(create(ChargeResponseSchema, { chargeId: "ch_1" }) as never)).toThrow(
      /phase\(name, ChargeResponseSchema, fn\)/,
    );
  });

  it("keeps protobuf messages with 64-bit integers and maps", () => {
    const codec = createMessagePhaseCodec(PaymentSchema);
    const payment = create(PaymentSchema, {
      paymentId: "pay_1",
      amountMinor: 9_007_199_254_740_993n,
      metadata: { order: "o-7", note: "" },
    });
    expect(codec.decode(codec.encode(payment), "step")).toEqual(payment);
  });

  it("refuses a message of another type than declared", () => {
    const codec = createMessagePhaseCodec(PaymentSchema);
    expect(() => codec.encode(create(ChargeResponseSchema) as never)).toThrow(/declared demo.v1.Payment/);
  });

  it("fails clearly when the recorded type is not the one the handler now expects", () => {
    const recorded = createMessagePhaseCodec(ChargeResponseSchema).encode(
      create(ChargeResponseSchema, { chargeId: "x" }),
    );
    expect(() => createMessagePhaseCodec(PaymentSchema).decode(recorded, "charge")).toThrow(
      'phase "charge" recorded demo.v1.ChargeResponse, but the handler now expects demo.v1.Payment',
    );
    expect(() => json.decode(recorded, "charge")).toThrow(
      'phase "charge" recorded demo.v1.ChargeResponse, but the handler now expects a JSON value',
    );
    expect(() => createMessagePhaseCodec(PaymentSchema).decode(json.encode({ a: 1 } as never), "charge")).toThrow(
      /recorded google.protobuf.Value/,
    );
  });
});
