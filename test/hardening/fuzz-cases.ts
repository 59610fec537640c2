// The inputs of fuzz.test.ts, drawn from a seeded generator, each with the
// answer it must get. Well-formed messages go through connect-es clients;
// everything a client would never send (random bytes, cut or oversized
// frames, bad compression, invalid UTF-8) goes as raw HTTP/2.
//
// What each input class gets (readMaxBytes is the adapter's limit):
//
// | input                                             | answer                                                     |
// |---------------------------------------------------|------------------------------------------------------------|
// | request ID missing where required                 | INVALID_ARGUMENT, reason REQUEST_ID_REQUIRED                |
// | request ID not a UUID / not 1-255 printable ASCII | INVALID_ARGUMENT, reason REQUEST_ID_INVALID                 |
// |   (too long, control characters, non-ASCII, nil   |                                                            |
// |   UUID, a lone surrogate sent in binary: U+FFFD)  |                                                            |
// | a lone surrogate sent in JSON ("\ud800")          | INVALID_ARGUMENT from connect, no reason ("invalid UTF8")  |
// | binary body that does not decode (also invalid    | INTERNAL from connect, no reason ("parse binary: ..."),    |
// |   UTF-8 in a string field)                        |   before the interceptor: no claim, no record              |
// | JSON body that does not decode                    | INVALID_ARGUMENT from connect, no reason ("cannot decode") |
// | gRPC/gRPC-Web frame cut short                     | INVALID_ARGUMENT "protocol error: incomplete envelope"     |
// | only a frame header, or no frame, or two frames   | UNIMPLEMENTED "missing/extra input message"                |
// | Connect body shorter than its content-length      | RST_STREAM PROTOCOL_ERROR from Node's HTTP/2 layer          |
// | message over readMaxBytes (declared or real,      | RESOURCE_EXHAUSTED "... larger than configured             |
// |   before or after decompression)                  |   readMaxBytes N"                                          |
// | corrupt compressed body                           | INVALID_ARGUMENT "decompression failed"                    |
// | compressed body cut short                         | INTERNAL "decompression failed"                            |
// | compressed frame without grpc-encoding            | INTERNAL "received compressed envelope, but do not know..." |
// | unknown encoding                                  | UNIMPLEMENTED "unknown compression ..."                    |
//
// What each input must get is decided here, independently of the server:
// - the request ID rules (a UUID for demo.v1.PaymentService, 1 to 255
//   printable ASCII characters for fixture.v1.FixtureService/Opaque) are
//   restated below, not imported;
// - for a random or mutated body, the body is decoded here with protobuf-es,
//   as connect-node decodes it: what does not decode must be refused by
//   connect before the interceptor, INTERNAL for binary ("parse binary"),
//   INVALID_ARGUMENT for JSON; what decodes must get the request ID rules;
// - for a corrupt compressed body, connect-node's own decompressor says
//   which of INVALID_ARGUMENT (corrupt stream) and INTERNAL (cut short)
//   connect answers.
import * as http2 from "node:http2";
import * as zlib from "node:zlib";
import { create, type DescMessage, fromBinary, fromJsonString, toBinary, toJsonString } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { CreatePaymentRequestSchema, RefundPaymentRequestSchema } from "../../gen/demo/v1/payments_pb.js";
import { OpaqueRequestSchema } from "../../gen/fixture/v1/fixture_pb.js";
import { ErrorReason } from "../../src/errors/error-reason.js";
import type { TransportVariant } from "../support/test-transports.js";
import { envelope, type RawProtocol, unaryHeaders } from "./raw-http2.js";

/** The three methods under fuzz: two request ID formats, one required and two optional keys. */
export type FuzzMethod = "createPayment" | "refundPayment" | "opaque";

interface MethodSpec {
  readonly path: string;
  readonly schema: DescMessage;
  /** The local name of the request ID field. */
  readonly keyField: "requestId" | "key";
  readonly format: "uuid" | "opaque";
  readonly required: boolean;
}

export const methodSpecs: Readonly<Record<FuzzMethod, MethodSpec>> = {
  createPayment: {
    path: "/demo.v1.PaymentService/CreatePayment",
    schema: CreatePaymentRequestSchema,
    keyField: "requestId",
    format: "uuid",
    required: false,
  },
  refundPayment: {
    path: "/demo.v1.PaymentService/RefundPayment",
    schema: RefundPaymentRequestSchema,
    keyField: "requestId",
    format: "uuid",
    required: true,
  },
  opaque: {
    path: "/fixture.v1.FixtureService/Opaque",
    schema: OpaqueRequestSchema,
    keyField: "key",
    format: "opaque",
    required: false,
  },
};

/** What an input must get. */
export type Expected =
  /** Success: the handler runs once for `key` (canonical), runs without deduplication (`unkeyed`), or not at all (`replay`). */
  | { readonly kind: "ok"; readonly runs: { readonly method: FuzzMethod; readonly key: string } | "unkeyed" | "replay" }
  /** An error with this code, this ErrorInfo reason (none when undefined) and a message matching `message`. */
  | { readonly kind: "error"; readonly code: Code; readonly reason: string | undefined; readonly message: RegExp }
  /** No answer of the protocol: the HTTP/2 layer resets the stream with this error code. */
  | { readonly kind: "reset"; readonly http2Code: number };

/** A well-formed request, sent by a connect-es client. */
export interface ClientCase {
  readonly kind: "client";
  /** The input class, for the report. */
  readonly inputClass: string;
  readonly variant: TransportVariant;
  readonly method: FuzzMethod;
  /** The request message's fields. */
  readonly message: Record<string, unknown>;
  readonly expected: Expected;
  /** For a replay: the index of the case whose response it must repeat. */
  readonly replayOf?: number;
}

/** A request built byte by byte, sent on a raw HTTP/2 stream. */
export interface RawCase {
  readonly kind: "raw";
  readonly inputClass: string;
  readonly protocol: RawProtocol;
  readonly method: FuzzMethod;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  readonly expected: Expected;
}

export type FuzzCase = ClientCase | RawCase;

const uuidRule = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const nilUuid = "00000000-0000-0000-0000-000000000000";
const opaqueRule = /^[\x20-\x7e]{1,255}$/;

const invalidKey = (): Expected => ({
  kind: "error",
  code: Code.InvalidArgument,
  reason: ErrorReason.REQUEST_ID_INVALID,
  message: /^the request ID in field \w+ must /,
});

/** What a decoded request gets for its request ID: the rules of the README, restated. */
export function expectedForKey(method: FuzzMethod, key: string): Expected {
  const spec = methodSpecs[method];
  if (key === "") {
    return spec.required
      ? {
          kind: "error",
          code: Code.InvalidArgument,
          reason: ErrorReason.REQUEST_ID_REQUIRED,
          message: /requires a request ID/,
        }
      : { kind: "ok", runs: "unkeyed" };
  }
  if (spec.format === "uuid") {
    return uuidRule.test(key) && key.toLowerCase() !== nilUuid
      ? { kind: "ok", runs: { method, key: key.toLowerCase() } }
      : invalidKey();
  }
  return opaqueRule.test(key) ? { kind: "ok", runs: { method, key } } : invalidKey();
}

/** What a body (already decompressed) gets: refused by connect when it does not decode, else the request ID rules. */
export function expectedForPayload(method: FuzzMethod, binary: boolean, bytes: Uint8Array): Expected {
  const spec = methodSpecs[method];
  let message: Record<string, unknown>;
  try {
    message = (binary
      ? fromBinary(spec.schema, bytes)
      : fromJsonString(spec.schema, new TextDecoder().decode(bytes), {
          ignoreUnknownFields: true,
        })) as unknown as Record<string, unknown>;
  } catch {
    return binary
      ? { kind: "error", code: Code.Internal, reason: undefined, message: /^parse binary: / }
      : { kind: "error", code: Code.InvalidArgument, reason: undefined, message: /^cannot decode / };
  }
  const metadata = message.metadata as Record<string, string> | undefined;
  if (metadata !== undefined && ("fail" in metadata || "delay_ms" in metadata)) {
    throw new Error("a random body decoded into instructions for the test handler: pick another seed");
  }
  return expectedForKey(method, message[spec.keyField] as string);
}

/** The seeded draws the generators use: each call returns a number in [0, 1). */
export type Draw = () => number;

const int = (draw: Draw, min: number, max: number) => min + Math.floor(draw() * (max - min + 1));
const pick = <T>(draw: Draw, items: readonly T[]): T => items[Math.floor(draw() * items.length)]!;
const randomBytes = (draw: Draw, length: number) => Buffer.from(Array.from({ length }, () => int(draw, 0, 255)));
const printable = (draw: Draw, length: number) =>
  String.fromCharCode(...Array.from({ length }, () => int(draw, 0x20, 0x7e)));

/** A version 4 UUID from the seeded draws (reproducible, unlike crypto.randomUUID). */
export function seededUuid(draw: Draw): string {
  const hex = Array.from({ length: 32 }, () => int(draw, 0, 15).toString(16));
  hex[12] = "4";
  hex[16] = (8 + int(draw, 0, 3)).toString(16);
  const h = hex.join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A fresh valid key of the method's format; opaque keys carry `n` so that no two collide. */
function freshKey(draw: Draw, method: FuzzMethod, n: number): string {
  return methodSpecs[method].format === "uuid"
    ? seededUuid(draw)
    : `k${n} ${printable(draw, int(draw, 0, 40))}`.slice(0, 255);
}

const insertAt = (draw: Draw, text: string, insert: string) => {
  const at = int(draw, 0, text.length);
  return text.slice(0, at) + insert + text.slice(at);
};

const controlCharacters = ["\u0000", "\u0001", "\t", "\n", "\r", "\u001b", "\u001f", "\u007f"];
const nonAscii = ["é", "ü", "ß", "中", "文", "😀", "\u00a0", "\u200b", "０", "ａ", "\u2028", "\ufeff"];
const loneSurrogates = ["\ud800", "\udbff", "\udc00", "\udfff"];

/** Keys that are never a valid UUID. */
function invalidUuid(draw: Draw): string {
  const uuid = seededUuid(draw);
  return pick(draw, [
    () => uuid.replaceAll("-", ""),
    () => `{${uuid}}`,
    () => `urn:uuid:${uuid}`,
    () => ` ${uuid}`,
    () => `${uuid} `,
    () => uuid.slice(0, int(draw, 1, 35)),
    () => `${uuid}${int(draw, 0, 9)}`,
    () => uuid.replace(/[0-9a-f]/, "g"),
    () => uuid.replaceAll("-", "_"),
    () => nilUuid,
    () => "not-a-uuid",
    () => "-",
  ])();
}

/** The fields of a well-formed request for `method` with request ID `key`. */
function messageFor(draw: Draw, method: FuzzMethod, key: string): Record<string, unknown> {
  switch (method) {
    case "createPayment":
      return {
        requestId: key,
        accountId: `acct-${int(draw, 0, 999)}`,
        amountMinor: BigInt(int(draw, 1, 1_000_000)),
        currency: pick(draw, ["EUR", "USD", "JPY", "€", ""]),
        metadata: draw() < 0.3 ? { note: pick(draw, ["ok", "ünïcödé", "中文", "\u0000x", printable(draw, 20)]) } : {},
      };
    case "refundPayment":
      return { requestId: key, paymentId: `pay_${int(draw, 0, 1e6)}`, amountMinor: BigInt(int(draw, 1, 10_000)) };
    case "opaque":
      return {
        key,
        text: printable(draw, int(draw, 0, 60)),
        numbers: Array.from({ length: int(draw, 0, 4) }, () => int(draw, -5, 5)),
      };
  }
}

/** The input classes of well-formed requests, with how often each is drawn. */
const clientClasses: readonly {
  readonly name: string;
  readonly weight: number;
  readonly key: (draw: Draw, method: FuzzMethod, n: number) => string | undefined;
}[] = [
  { name: "valid key", weight: 6, key: (draw, method, n) => freshKey(draw, method, n) },
  {
    name: "upper-case UUID",
    weight: 1,
    key: (draw, method) => (methodSpecs[method].format === "uuid" ? seededUuid(draw).toUpperCase() : undefined),
  },
  { name: "empty key", weight: 1, key: () => "" },
  {
    name: "too long key",
    weight: 1,
    key: (draw, method) =>
      methodSpecs[method].format === "uuid"
        ? `${seededUuid(draw)}${printable(draw, int(draw, 1, 300))}`
        : printable(draw, int(draw, 256, 2_000)),
  },
  {
    name: "control character",
    weight: 1,
    key: (draw, method, n) => insertAt(draw, freshKey(draw, method, n), pick(draw, controlCharacters)),
  },
  {
    name: "non-ASCII",
    weight: 1,
    key: (draw, method, n) => insertAt(draw, freshKey(draw, method, n), pick(draw, nonAscii)),
  },
  {
    name: "lone surrogate",
    weight: 1,
    key: (draw, method, n) => insertAt(draw, freshKey(draw, method, n), pick(draw, loneSurrogates)),
  },
  {
    name: "invalid UUID",
    weight: 2,
    key: (draw, method) => (methodSpecs[method].format === "uuid" ? invalidUuid(draw) : undefined),
  },
];

/**
 * What a well-formed request with this key gets. A lone surrogate cannot
 * travel as it is: the binary encoder sends U+FFFD instead (a non-ASCII key),
 * while JSON escapes it (`"\ud800"`), which protobuf-es on the server refuses
 * to decode ("invalid UTF8"): INVALID_ARGUMENT from connect, without reason.
 */
function expectedForClientKey(method: FuzzMethod, key: string, binary: boolean): Expected {
  if (!binary && /[\ud800-\udfff]/.test(key.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ""))) {
    return { kind: "error", code: Code.InvalidArgument, reason: undefined, message: /invalid UTF8/ };
  }
  return expectedForKey(method, key);
}

/** Draws `count` well-formed requests for the first phase (no replays yet). */
export function drawClientCases(draw: Draw, variants: readonly TransportVariant[], count: number): ClientCase[] {
  const cases: ClientCase[] = [];
  const weights = clientClasses.reduce((sum, c) => sum + c.weight, 0);
  while (cases.length < count) {
    let roll = draw() * weights;
    const inputClass =
      clientClasses.find((c) => {
        roll -= c.weight;
        return roll < 0;
      }) ?? clientClasses[0]!;
    const method = pick(draw, ["createPayment", "refundPayment", "opaque"] as const);
    const key = inputClass.key(draw, method, cases.length);
    if (key === undefined) {
      continue;
    }
    const variant = pick(draw, variants);
    cases.push({
      kind: "client",
      inputClass: `${inputClass.name} (${methodSpecs[method].format})`,
      variant,
      method,
      message: messageFor(draw, method, key),
      expected: expectedForClientKey(method, key, variant.binary),
    });
  }
  return cases;
}

/**
 * The second phase: replays (the same message, any protocol) and
 * mismatches (the same key, another payload) of first-phase requests that
 * ran. Sent only after the first phase answered, so that the original is
 * always first.
 */
export function drawFollowUps(
  draw: Draw,
  variants: readonly TransportVariant[],
  first: readonly ClientCase[],
  count: number,
): ClientCase[] {
  const ran = first.flatMap((c, index) =>
    c.expected.kind === "ok" && typeof c.expected.runs === "object" ? [{ c, index }] : [],
  );
  return Array.from({ length: count }, () => {
    const { c, index } = pick(draw, ran);
    const variant = pick(draw, variants);
    if (draw() < 0.6) {
      return {
        kind: "client",
        inputClass: "replay",
        variant,
        method: c.method,
        message: c.message,
        expected: { kind: "ok", runs: "replay" },
        replayOf: index,
      };
    }
    const changed =
      c.method === "opaque"
        ? { ...c.message, text: `${String(c.message.text)}!` }
        : { ...c.message, amountMinor: (c.message.amountMinor as bigint) + 1n };
    return {
      kind: "client",
      inputClass: "same key, other payload",
      variant,
      method: c.method,
      message: changed,
      expected: {
        kind: "error",
        code: Code.FailedPrecondition,
        reason: ErrorReason.REQUEST_ID_REUSED,
        message: /different/,
      },
    };
  });
}

type Encoding = "gzip" | "br";

const compress = (encoding: Encoding, bytes: Uint8Array): Buffer =>
  encoding === "gzip" ? zlib.gzipSync(bytes) : zlib.brotliCompressSync(bytes);

/** Encodes a message for a codec; the binary encoder cannot carry lone surrogates, JSON escapes them. */
function encodeMessage(method: FuzzMethod, binary: boolean, fields: Record<string, unknown>): Buffer {
  const schema = methodSpecs[method].schema;
  const message = create(schema, fields as never);
  return Buffer.from(binary ? toBinary(schema, message) : new TextEncoder().encode(toJsonString(schema, message)));
}

/** Mutates bytes: flips, inserts, deletes, or cuts them off, one to four times. */
function mutate(draw: Draw, bytes: Buffer): Buffer {
  let out = Buffer.from(bytes);
  for (let i = int(draw, 1, 4); i > 0; i--) {
    const at = int(draw, 0, Math.max(0, out.byteLength - 1));
    switch (int(draw, 0, 3)) {
      case 0:
        if (out.byteLength > 0) out[at] = int(draw, 0, 255);
        break;
      case 1:
        out = Buffer.concat([out.subarray(0, at), randomBytes(draw, int(draw, 1, 8)), out.subarray(at)]);
        break;
      case 2:
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + int(draw, 1, 4))]);
        break;
      case 3:
        out = out.subarray(0, at);
        break;
    }
  }
  return out;
}

/** Request ID bytes that no client sends: invalid UTF-8, or JSON escapes of control characters and surrogates. */
function oddKeyPayload(draw: Draw, method: FuzzMethod, binary: boolean, n: number): Buffer {
  const key = freshKey(draw, method, n);
  if (binary) {
    const rest = encodeMessage(method, true, { ...messageFor(draw, method, ""), [methodSpecs[method].keyField]: "" });
    const odd = pick(draw, [
      Buffer.from([0xff]),
      Buffer.from([0xc0, 0x80]), // overlong NUL
      Buffer.from([0xed, 0xa0, 0x80]), // a UTF-16 surrogate as CESU-8
      Buffer.from([0xe4, 0xb8]), // a character cut short
      Buffer.from("é", "utf8"),
      Buffer.from([0x00]),
    ]);
    const at = int(draw, 0, key.length);
    const keyBytes = Buffer.concat([Buffer.from(key.slice(0, at)), odd, Buffer.from(key.slice(at))]);
    return Buffer.concat([Buffer.from([0x0a, keyBytes.byteLength]), keyBytes, rest]);
  }
  const escapeSequence = pick(draw, [
    "\\u0000",
    "\\u001f",
    "\\ud800",
    "\\udfff",
    "\\ud83d\\ude00",
    "\\u00e9",
    "\\\\",
    '\\"',
  ]);
  const at = int(draw, 0, key.length);
  const field = methodSpecs[method].keyField;
  return Buffer.from(`{"${field}":"${key.slice(0, at)}${escapeSequence}${key.slice(at)}"}`);
}

/** Options of `drawRawCases`. */
export interface RawCaseOptions {
  /** The server's readMaxBytes. */
  readonly readMaxBytes: number;
}

const rawClasses = [
  "valid",
  "random body",
  "mutated body",
  "odd key bytes",
  "truncated frame",
  "oversized frame",
  "oversized after decompression",
  "corrupt compression",
  "frame misuse",
] as const;

/** Draws `count` raw requests over every protocol, codec and compression. */
export async function drawRawCases(draw: Draw, count: number, options: RawCaseOptions): Promise<RawCase[]> {
  const cases: RawCase[] = [];
  while (cases.length < count) {
    const inputClass = pick(draw, rawClasses);
    const protocol = pick(draw, ["connect", "grpc", "grpc-web"] as const);
    const binary = draw() < 0.6;
    const encoding = pick(draw, [undefined, undefined, "gzip", "br"] as const);
    const method = pick(draw, ["createPayment", "refundPayment", "opaque"] as const);
    const made = await drawRawCase(draw, { inputClass, protocol, binary, encoding, method, n: cases.length }, options);
    if (made !== undefined) {
      cases.push(made);
    }
  }
  return cases;
}

interface RawShape {
  readonly inputClass: (typeof rawClasses)[number];
  readonly protocol: RawProtocol;
  readonly binary: boolean;
  readonly encoding: Encoding | undefined;
  readonly method: FuzzMethod;
  readonly n: number;
}

async function drawRawCase(draw: Draw, shape: RawShape, options: RawCaseOptions): Promise<RawCase | undefined> {
  const { inputClass, protocol, binary, encoding, method, n } = shape;
  const framed = protocol !== "connect";
  const path = methodSpecs[method].path;
  const headersFor = (enc: string | undefined, extra: Record<string, string> = {}) =>
    unaryHeaders(protocol, path, { binary, encoding: enc, extra }) as Record<string, string>;
  // A body, compressed when the case has an encoding, framed for gRPC and gRPC-Web.
  const wrap = (payload: Buffer): Buffer => {
    const onWire = encoding === undefined ? payload : compress(encoding, payload);
    return framed ? envelope(onWire, encoding === undefined ? 0 : 1) : onWire;
  };
  const make = (body: Buffer, expected: Expected, headers = headersFor(encoding)): RawCase => ({
    kind: "raw",
    inputClass: labelOf(inputClass, protocol, binary, headers),
    protocol,
    method,
    headers,
    body,
    expected,
  });
  const exhausted: Expected = {
    kind: "error",
    code: Code.ResourceExhausted,
    reason: undefined,
    message: /readMaxBytes/,
  };
  switch (inputClass) {
    case "valid": {
      const key = freshKey(draw, method, n);
      return make(wrap(encodeMessage(method, binary, messageFor(draw, method, key))), expectedForKey(method, key));
    }
    case "random body": {
      // Only methods whose keys are UUIDs: a random body never holds a valid
      // one, so two random bodies never claim the same key.
      if (method === "opaque") return undefined;
      const payload = binary || draw() < 0.3 ? randomBytes(draw, int(draw, 0, 300)) : randomJsonish(draw);
      return make(wrap(payload), expectedForPayload(method, binary, payload));
    }
    case "mutated body": {
      const key = freshKey(draw, method, n);
      const payload = mutate(draw, encodeMessage(method, binary, messageFor(draw, method, key)));
      return make(wrap(payload), expectedForPayload(method, binary, payload));
    }
    case "odd key bytes": {
      const payload = oddKeyPayload(draw, method, binary, n);
      return make(wrap(payload), expectedForPayload(method, binary, payload));
    }
    case "truncated frame": {
      const body = wrap(encodeMessage(method, binary, messageFor(draw, method, freshKey(draw, method, n))));
      if (!framed) {
        // Connect has no frames; a body shorter than its content-length is the
        // counterpart. HTTP/2 requires the two to match: node's HTTP/2 layer
        // (nghttp2) resets the stream with PROTOCOL_ERROR before connect sees it.
        return make(
          body.subarray(0, int(draw, 0, body.byteLength - 1)),
          { kind: "reset", http2Code: http2.constants.NGHTTP2_PROTOCOL_ERROR },
          headersFor(encoding, { "content-length": String(body.byteLength) }),
        );
      }
      const cut = int(draw, 1, body.byteLength - 1);
      // connect's envelope reader quirk: a complete 5-byte header and not one
      // byte of its payload count as no message at all, not as a cut one.
      const expected: Expected =
        cut === 5
          ? {
              kind: "error",
              code: Code.Unimplemented,
              reason: undefined,
              message: /^protocol error: missing input message for unary method$/,
            }
          : {
              kind: "error",
              code: Code.InvalidArgument,
              reason: undefined,
              message: /^protocol error: incomplete envelope$/,
            };
      return make(body.subarray(0, cut), expected);
    }
    case "oversized frame": {
      const size = options.readMaxBytes + int(draw, 1, 64 * 1024);
      if (!framed) {
        // With its content-length (refused from the header) or without (refused once past the limit).
        const declared = draw() < 0.5;
        return make(
          randomBytes(draw, size),
          exhausted,
          headersFor(undefined, declared ? { "content-length": String(size) } : {}),
        );
      }
      // The header alone announces too much, or the whole payload is there.
      const payload = draw() < 0.5 ? randomBytes(draw, int(draw, 0, 64)) : randomBytes(draw, size);
      return make(envelope(payload, 0, size), exhausted, headersFor(undefined));
    }
    case "oversized after decompression": {
      const enc = encoding ?? "gzip";
      const inflated = Buffer.alloc(options.readMaxBytes + int(draw, 1, 1024 * 1024));
      const onWire = compress(enc, inflated);
      return make(framed ? envelope(onWire, 1) : onWire, exhausted, headersFor(enc));
    }
    case "corrupt compression": {
      const enc = encoding ?? pick(draw, ["gzip", "br"] as const);
      const valid = compress(enc, encodeMessage(method, binary, messageFor(draw, method, freshKey(draw, method, n))));
      const onWire = pick(draw, [
        () => randomBytes(draw, int(draw, 1, 200)),
        () => valid.subarray(0, int(draw, 1, valid.byteLength - 1)),
        () => mutate(draw, valid),
      ])();
      const expected = await expectedAfterDecompression(enc, onWire, method, binary, options.readMaxBytes);
      return make(framed ? envelope(onWire, 1) : onWire, expected, headersFor(enc));
    }
    case "frame misuse": {
      const valid = encodeMessage(method, binary, messageFor(draw, method, freshKey(draw, method, n)));
      const misuse = pick(
        draw,
        framed ? ["no frame", "two frames", "compressed flag, no encoding", "unknown encoding"] : ["unknown encoding"],
      );
      switch (misuse) {
        case "no frame":
          return make(
            Buffer.alloc(0),
            { kind: "error", code: Code.Unimplemented, reason: undefined, message: /missing input message/ },
            headersFor(undefined),
          );
        case "two frames":
          return make(
            Buffer.concat([envelope(valid), envelope(valid)]),
            { kind: "error", code: Code.Unimplemented, reason: undefined, message: /extra input message/ },
            headersFor(undefined),
          );
        case "compressed flag, no encoding":
          return make(
            envelope(zlib.gzipSync(valid), 1),
            { kind: "error", code: Code.Internal, reason: undefined, message: /do not know how to decompress/ },
            headersFor(undefined),
          );
        default: {
          const unknown = pick(draw, ["zstd", "deflate", "snappy", "x-unknown"]);
          return make(
            framed ? envelope(valid, 1) : valid,
            { kind: "error", code: Code.Unimplemented, reason: undefined, message: /^unknown compression / },
            headersFor(unknown),
          );
        }
      }
    }
  }
}

/** The input class with the protocol, codec and the encoding the request names. */
function labelOf(inputClass: string, protocol: RawProtocol, binary: boolean, headers: Record<string, string>): string {
  const encoding = headers["content-encoding"] ?? headers["grpc-encoding"];
  return `${inputClass} (${protocol} ${binary ? "binary" : "JSON"}${encoding === undefined ? "" : ` ${encoding}`})`;
}

/** JSON-looking text: braces, quotes, field names, escapes and digits at random. */
function randomJsonish(draw: Draw): Buffer {
  const tokens = [
    "{",
    "}",
    "[",
    "]",
    '"',
    ":",
    ",",
    "requestId",
    "request_id",
    "key",
    "amountMinor",
    '"1"',
    "null",
    "true",
    "1e999",
    "-0",
    "\\u0000",
    "\\ud800",
    " ",
    "é",
  ];
  return Buffer.from(Array.from({ length: int(draw, 0, 30) }, () => pick(draw, tokens)).join(""));
}

/** What connect answers for a compressed body: its decompressor's error, or what the inflated body gets. */
async function expectedAfterDecompression(
  encoding: Encoding,
  onWire: Buffer,
  method: FuzzMethod,
  binary: boolean,
  readMaxBytes: number,
): Promise<Expected> {
  const compression = encoding === "gzip" ? compressionGzip : compressionBrotli;
  try {
    const inflated = await compression.decompress(onWire, readMaxBytes);
    return expectedForPayload(method, binary, inflated);
  } catch (error) {
    const code = (error as { code?: Code }).code ?? Code.Unknown;
    return {
      kind: "error",
      code,
      reason: undefined,
      message: code === Code.ResourceExhausted ? /readMaxBytes/ : /^decompression failed$/,
    };
  }
}
