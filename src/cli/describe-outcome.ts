import { createRegistry, fromBinary, type JsonValue, toJson } from "@bufbuild/protobuf";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { file_google_rpc_error_details } from "../../gen/google/rpc/error_details_pb.js";
import { decodeStoredOutcome, type StoredOutcomeValue } from "../server/stored-outcome.js";
import type { LoadedDescriptors } from "./load-descriptors.js";

/** A stored outcome as `keys show` presents it. */
export type OutcomeView =
  | {
      readonly kind: "response";
      /** Size of the whole StoredOutcome. */
      readonly bytes: number;
      /** The method's output type, when the descriptors know the method. */
      readonly type: string | undefined;
      /** The response in the protobuf JSON form, when it could be decoded. */
      readonly json: JsonValue | undefined;
      /** Why `json` is missing. */
      readonly note: string | undefined;
      /** The response message in the protobuf binary encoding, base64. */
      readonly base64: string;
      /** Headers and trailers the handler set. */
      readonly header: Record<string, string>;
      readonly trailer: Record<string, string>;
    }
  | {
      readonly kind: "error";
      readonly bytes: number;
      /** The Connect code, such as `failed_precondition`. */
      readonly code: string;
      readonly message: string;
      /** Error details, decoded when their type is known. */
      readonly details: readonly DetailView[];
      /** Headers and trailers of the error. */
      readonly metadata: Record<string, string>;
    }
  | {
      /** A success of a method in DUPLICATE_MODE_REJECT, stored without its response. */
      readonly kind: "executed";
      readonly bytes: number;
      /** The resource name the handler set, or empty. */
      readonly resourceName: string;
    }
  | {
      readonly kind: "invalid";
      readonly bytes: number;
      /** Why the bytes are not a StoredOutcome. */
      readonly problem: string;
      readonly base64: string;
    };

/** One error detail. */
export interface DetailView {
  /** The fully qualified message name. */
  readonly type: string;
  /** The detail in the protobuf JSON form, when its type is known. */
  readonly json?: JsonValue;
  /** The detail in binary, base64, when its type is unknown. */
  readonly base64?: string;
}

/**
 * Decodes a stored outcome for display: the envelope always (kind, headers,
 * error code, message and details), and a response message too when the
 * descriptors hold the method. `google.rpc` error details are always known.
 */
export function describeOutcome(method: string, bytes: Uint8Array, descriptors: LoadedDescriptors): OutcomeView {
  let outcome: StoredOutcomeValue;
  try {
    outcome = decodeStoredOutcome(bytes);
  } catch (error) {
    return {
      kind: "invalid",
      bytes: bytes.byteLength,
      problem: error instanceof Error ? error.message : String(error),
      base64: Buffer.from(bytes).toString("base64"),
    };
  }
  const registry =
    descriptors.kind === "found"
      ? createRegistry(file_google_rpc_error_details, descriptors.registry)
      : createRegistry(file_google_rpc_error_details);
  if (outcome.kind === "executed") {
    return { kind: "executed", bytes: bytes.byteLength, resourceName: outcome.resourceName };
  }
  if (outcome.kind === "error") {
    const { error } = outcome;
    return {
      kind: "error",
      bytes: bytes.byteLength,
      code: codeToString(error.code),
      message: error.rawMessage,
      details: error.details.map((detail) => {
        // Stored details come back undecoded, as type name and bytes.
        const raw = detail as { type: string; value: Uint8Array };
        const desc = registry.getMessage(raw.type);
        return desc === undefined
          ? { type: raw.type, base64: Buffer.from(raw.value).toString("base64") }
          : { type: raw.type, json: toJson(desc, fromBinary(desc, raw.value), { registry }) };
      }),
      metadata: Object.fromEntries(error.metadata),
    };
  }
  const base = {
    kind: "response" as const,
    bytes: bytes.byteLength,
    base64: Buffer.from(outcome.response).toString("base64"),
    header: Object.fromEntries(outcome.header),
    trailer: Object.fromEntries(outcome.trailer),
  };
  if (descriptors.kind === "none") {
    return { ...base, type: undefined, json: undefined, note: descriptors.reason };
  }
  const [serviceName, methodName] = method.split("/");
  const output = registry.getService(serviceName ?? "")?.methods.find((m) => m.name === methodName)?.output;
  if (output === undefined) {
    return { ...base, type: undefined, json: undefined, note: `the descriptors have no method ${method}` };
  }
  try {
    const json = toJson(output, fromBinary(output, outcome.response), { registry });
    return { ...base, type: output.typeName, json, note: undefined };
  } catch (error) {
    return {
      ...base,
      type: output.typeName,
      json: undefined,
      note: `not a ${output.typeName}: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
}
