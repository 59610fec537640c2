import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { type Code, ConnectError } from "@connectrpc/connect";
import {
  type StoredHeader,
  StoredHeaderSchema,
  StoredOutcomeSchema,
} from "../../gen/idempotency/v1/stored_outcome_pb.js";
import { isProtocolHeader } from "./protocol-headers.js";

/**
 * The outcome of one execution, as the interceptor stores and replays it.
 *
 * - `response`: the response message in the protobuf binary encoding, with
 *   the headers and trailers the handler set.
 * - `error`: the error the handler raised, with its code, message, details
 *   and metadata.
 * - `executed`: a success of a method in DUPLICATE_MODE_REJECT, kept without
 *   its response: only that it ran, and the name of the resource the handler
 *   created (empty when it named none).
 *
 * Headers of the wire protocol (content-type, grpc-status, compression...)
 * are never part of an outcome; see `isProtocolHeader`.
 *
 * @private Internal code, does not follow semantic versioning.
 */
export type StoredOutcomeValue =
  | {
      readonly kind: "response";
      readonly response: Uint8Array;
      readonly header: Headers;
      readonly trailer: Headers;
    }
  | { readonly kind: "error"; readonly error: ConnectError }
  | { readonly kind: "executed"; readonly resourceName: string };

/**
 * Encodes an outcome as an `idempotency.v1.StoredOutcome` in binary, the
 * form stores keep. An error's metadata goes to the `trailer` field.
 *
 * @private Internal code, does not follow semantic versioning.
 */
export function encodeStoredOutcome(outcome: StoredOutcomeValue): Uint8Array {
  if (outcome.kind === "executed") {
    return toBinary(
      StoredOutcomeSchema,
      create(StoredOutcomeSchema, { result: { case: "executed", value: { resourceName: outcome.resourceName } } }),
    );
  }
  if (outcome.kind === "response") {
    return encodeStoredResponse(outcome.response, outcome.header, outcome.trailer);
  }
  const { error } = outcome;
  return toBinary(
    StoredOutcomeSchema,
    create(StoredOutcomeSchema, {
      result: {
        case: "error",
        value: {
          code: error.code,
          message: error.rawMessage,
          details: error.details.map((detail) =>
            "desc" in detail
              ? anyPack(detail.desc, create(detail.desc, detail.value))
              : { typeUrl: `type.googleapis.com/${detail.type}`, value: detail.value },
          ),
        },
      },
      trailer: handlerHeaders(error.metadata),
    }),
  );
}

/**
 * Decodes a binary `idempotency.v1.StoredOutcome`. A stored error comes back
 * as a ConnectError with the same code, message, details and metadata;
 * a stored response as its binary message, which the caller parses with the
 * method's output type. Throws when the bytes are not a StoredOutcome with a
 * result.
 *
 * @private Internal code, does not follow semantic versioning.
 */
export function decodeStoredOutcome(bytes: Uint8Array): StoredOutcomeValue {
  const stored = fromBinary(StoredOutcomeSchema, bytes);
  const header = toHeaders(stored.header);
  const trailer = toHeaders(stored.trailer);
  switch (stored.result.case) {
    case "response":
      return { kind: "response", response: stored.result.value, header, trailer };
    case "error": {
      const { code, message, details } = stored.result.value;
      trailer.forEach((value, name) => {
        header.append(name, value);
      });
      const error = new ConnectError(message, code as Code, header);
      error.details = details.map((any) => ({
        type: any.typeUrl.substring(any.typeUrl.lastIndexOf("/") + 1),
        value: any.value,
      }));
      return { kind: "error", error };
    }
    case "executed":
      return { kind: "executed", resourceName: stored.result.value.resourceName };
    default:
      throw new Error("decodeStoredOutcome: the stored outcome has neither a response nor an error");
  }
}

// Field numbers of idempotency.v1.StoredOutcome and StoredHeader.
const responseField = 1;
const headerField = 3;
const trailerField = 4;
const nameField = 1;
const valueField = 2;

/**
 * A response outcome, written field by field: every successful call stores
 * one, and building the messages to encode them by reflection costs more
 * than the rest of the encoding. The bytes are the ones `toBinary` writes
 * for the same StoredOutcome (fields in number order, proto3 empty strings
 * left out, the oneof's bytes written even when empty).
 */
function encodeStoredResponse(response: Uint8Array, header: Headers, trailer: Headers): Uint8Array {
  const kept: [number, string, string][] = [];
  header.forEach((value, name) => {
    if (!isProtocolHeader(name)) kept.push([headerField, name, value]);
  });
  trailer.forEach((value, name) => {
    if (!isProtocolHeader(name)) kept.push([trailerField, name, value]);
  });
  if (kept.length === 0) {
    // Most handlers set no headers: the tag, the length and the response.
    const length = response.byteLength;
    const bytes = new Uint8Array(1 + varintSize(length) + length);
    bytes[0] = (responseField << 3) | WireType.LengthDelimited;
    bytes.set(response, writeVarint(bytes, 1, length));
    return bytes;
  }
  const writer = new BinaryWriter();
  writer.tag(responseField, WireType.LengthDelimited).bytes(response);
  for (const [field, name, value] of kept) {
    writer.tag(field, WireType.LengthDelimited).fork();
    if (name !== "") {
      writer.tag(nameField, WireType.LengthDelimited).string(name);
    }
    if (value !== "") {
      writer.tag(valueField, WireType.LengthDelimited).string(value);
    }
    writer.join();
  }
  return writer.finish();
}

function varintSize(value: number): number {
  let size = 1;
  for (let rest = value >>> 7; rest !== 0; rest >>>= 7) {
    size++;
  }
  return size;
}

/** Writes `value` (below 2^32) as a varint at `offset`; returns the offset after it. */
function writeVarint(bytes: Uint8Array, offset: number, value: number): number {
  let rest = value >>> 0;
  let at = offset;
  while (rest > 0x7f) {
    bytes[at++] = (rest & 0x7f) | 0x80;
    rest >>>= 7;
  }
  bytes[at++] = rest;
  return at;
}

function handlerHeaders(headers: Headers): StoredHeader[] {
  const kept: StoredHeader[] = [];
  headers.forEach((value, name) => {
    if (!isProtocolHeader(name)) {
      kept.push(create(StoredHeaderSchema, { name, value }));
    }
  });
  return kept;
}

function toHeaders(stored: readonly StoredHeader[]): Headers {
  const headers = new Headers();
  for (const { name, value } of stored) {
    headers.append(name, value);
  }
  return headers;
}
