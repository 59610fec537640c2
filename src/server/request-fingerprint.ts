import { createHash } from "node:crypto";
import { type DescField, type DescMessage, type Message, clone, toBinary } from "@bufbuild/protobuf";

/**
 * Computes the fingerprint of a request: the hex SHA-256 of its protobuf
 * binary encoding with the request ID field cleared and map entries sorted
 * by key. Two requests have the same fingerprint exactly when they carry
 * the same field values: the order of map entries or of JSON object keys,
 * and the codec the client used, do not matter, while a changed field does.
 * Field numbers rather than names are hashed, so renaming a field keeps
 * fingerprints stable.
 */
export function fingerprintRequest(schema: DescMessage, message: Message, requestIdField: DescField): string {
  let canonical: Message;
  if (containsMap(schema)) {
    canonical = clone(schema, message);
    sortMaps(schema, canonical as unknown as Record<string, unknown>);
    (canonical as unknown as Record<string, unknown>)[requestIdField.localName] = "";
  } else {
    // A shallow copy is enough to clear a top-level string field.
    canonical = { ...message, [requestIdField.localName]: "" } as Message;
  }
  return createHash("sha256").update(toBinary(schema, canonical)).digest("hex");
}

// Whether a message type has a map field, directly or in nested messages;
// most request types have none, and take the cheaper path above.
const mapCache = new WeakMap<DescMessage, boolean>();

function containsMap(schema: DescMessage): boolean {
  let found = mapCache.get(schema);
  if (found === undefined) {
    found = searchMap(schema, new Set());
    mapCache.set(schema, found);
  }
  return found;
}

function searchMap(schema: DescMessage, seen: Set<DescMessage>): boolean {
  seen.add(schema);
  for (const field of schema.fields) {
    if (field.fieldKind === "map") {
      return true;
    }
    const nested = field.fieldKind === "message" || field.fieldKind === "list" ? field.message : undefined;
    if (nested !== undefined && !seen.has(nested) && searchMap(nested, seen)) {
      return true;
    }
  }
  return false;
}

// The binary encoding writes map entries in the order of the object's keys,
// which is insertion order for non-numeric keys: rebuild every map with its
// keys sorted. Works on a clone, never on the handler's message.
function sortMaps(schema: DescMessage, message: Record<string, unknown>): void {
  for (const field of schema.fields) {
    const value = fieldValue(field, message);
    if (value === undefined || value === null) {
      continue;
    }
    switch (field.fieldKind) {
      case "map": {
        const map = value as Record<string, unknown>;
        const sorted: Record<string, unknown> = {};
        for (const key of Object.keys(map).sort()) {
          sorted[key] = map[key];
          if (field.mapKind === "message") {
            sortMaps(field.message, map[key] as Record<string, unknown>);
          }
        }
        // Map fields cannot be members of a oneof.
        message[field.localName] = sorted;
        break;
      }
      case "message":
        sortMaps(field.message, value as Record<string, unknown>);
        break;
      case "list":
        if (field.listKind === "message") {
          for (const item of value as Record<string, unknown>[]) {
            sortMaps(field.message, item);
          }
        }
        break;
      default:
        break;
    }
  }
}

function fieldValue(field: DescField, message: Record<string, unknown>): unknown {
  if (field.oneof === undefined) {
    return message[field.localName];
  }
  const selected = message[field.oneof.localName] as { case?: string; value?: unknown };
  return selected.case === field.localName ? selected.value : undefined;
}
