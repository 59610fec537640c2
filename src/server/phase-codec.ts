import {
  type DescMessage,
  type JsonValue,
  type MessageShape,
  create,
  fromBinary,
  fromJsonString,
  isMessage,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import { AnySchema, EmptySchema, ValueSchema, anyPack, anyUnpack } from "@bufbuild/protobuf/wkt";

/**
 * How the result of one phase is kept: a `google.protobuf.Any` in binary, so
 * that a recorded result names its own type. A protobuf message is packed as
 * itself, a JSON value as a `google.protobuf.Value`, and `undefined` (a step
 * without a result) as a `google.protobuf.Empty`.
 */
export interface PhaseCodec<T> {
  /** The result in its stored form; throws when it cannot be stored. */
  encode(value: T): Uint8Array;
  /** The result from its stored form; throws when another type was recorded. */
  decode(bytes: Uint8Array, phase: string): T;
}

/** The results a phase without a schema may return: JSON, or nothing. */
// biome-ignore lint/suspicious/noConfusingVoidType: a phase function that returns nothing is typed `() => void`.
export type PhaseJsonResult = JsonValue | void;

/** Keeps JSON values (and `undefined`) as `google.protobuf.Value` (and `Empty`). */
export function createJsonPhaseCodec<T extends PhaseJsonResult>(): PhaseCodec<T> {
  return {
    encode(value) {
      if (value === undefined) {
        return toBinary(AnySchema, anyPack(EmptySchema, create(EmptySchema)));
      }
      if (isMessage(value)) {
        throw new TypeError(
          `atomicEffects: a phase returned the protobuf message ${value.$typeName} without its schema: pass the schema, as in phase(name, ${value.$typeName.split(".").pop()}Schema, fn)`,
        );
      }
      // What JSON.stringify keeps, as everywhere JSON is written: undefined
      // properties vanish, NaN becomes null. Every run of the step then sees
      // the decoded form, the first one included.
      const message = fromJsonString(ValueSchema, JSON.stringify(value));
      return toBinary(AnySchema, anyPack(ValueSchema, message));
    },
    decode(bytes, phase) {
      const any = fromBinary(AnySchema, bytes);
      if (anyUnpack(any, EmptySchema) !== undefined) {
        return undefined as T;
      }
      const value = anyUnpack(any, ValueSchema);
      if (value === undefined) {
        throw recordedTypeMismatch(phase, any.typeUrl, "a JSON value");
      }
      return toJson(ValueSchema, value) as T;
    },
  };
}

/** Keeps messages of one schema as themselves. */
export function createMessagePhaseCodec<Desc extends DescMessage>(schema: Desc): PhaseCodec<MessageShape<Desc>> {
  return {
    encode(value) {
      if (!isMessage(value, schema)) {
        throw new TypeError(`atomicEffects: a phase declared ${schema.typeName} but returned something else`);
      }
      return toBinary(AnySchema, anyPack(schema, value));
    },
    decode(bytes, phase) {
      const any = fromBinary(AnySchema, bytes);
      const value = anyUnpack(any, schema);
      if (value === undefined) {
        throw recordedTypeMismatch(phase, any.typeUrl, schema.typeName);
      }
      return value;
    },
  };
}

function recordedTypeMismatch(phase: string, typeUrl: string, expected: string): Error {
  // Only a code change while the request was in flight gets here.
  return new Error(
    `atomicEffects: phase "${phase}" recorded ${typeUrl.slice(typeUrl.lastIndexOf("/") + 1)}, but the handler now expects ${expected}`,
  );
}
