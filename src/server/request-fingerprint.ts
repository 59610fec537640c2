import { type DescField, type DescMessage, type Message, toBinary } from "@bufbuild/protobuf";
import { clearFieldPath, type FieldPath } from "../policy/field-path.js";
import { sha256Hex } from "./sha256-hex.js";

/**
 * Computes the fingerprint of a request: the hex SHA-256 of its protobuf
 * binary encoding with the request ID field cleared and map entries sorted
 * by key. Two requests have the same fingerprint exactly when they carry
 * the same field values: the order of map entries or of JSON object keys,
 * and the codec the client used, do not matter, while a changed field does.
 * Field numbers rather than names are hashed, so renaming a field keeps
 * fingerprints stable. Unknown fields (from a client with a newer schema)
 * are ignored. Fields in `exclude` (the method's `fingerprint_exclude`) are
 * cleared too; a method with a natural key has no request ID field to clear.
 * This is the bare hex; records carry it with its version, see
 * `versionedFingerprint`.
 *
 * @private Internal code, does not follow semantic versioning.
 */
export function fingerprintRequest(
  schema: DescMessage,
  message: Message,
  requestIdField: DescField | undefined,
  exclude: readonly FieldPath[] = [],
): string {
  // Shallow copies are enough to clear a top-level string field and to
  // replace maps: the handler's message is never changed.
  let canonical = { ...message } as unknown as Record<string, unknown>;
  if (requestIdField !== undefined) {
    canonical[requestIdField.localName] = "";
  }
  for (const path of exclude) {
    canonical = clearFieldPath(canonical, path);
  }
  if (containsMap(schema)) {
    sortMaps(schema, canonical);
  }
  // Unknown fields are left out: a client with a newer schema sends them in
  // binary but cannot in JSON, and its retries must match either way.
  return sha256Hex(toBinary(schema, canonical as unknown as Message, { writeUnknownFields: false }));
}

// Whether a message type has a map field, directly or in nested messages;
// most request types have none, and skip the walk below.
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
// keys sorted. `message` is a shallow copy owned by the caller; what leads to
// a map is copied before it is changed (copy on write), so that the
// handler's message stays as it was without cloning all of it.
function sortMaps(schema: DescMessage, message: Record<string, unknown>): void {
  for (const field of schema.fields) {
    const value = fieldValue(field, message);
    if (value === undefined || value === null) {
      continue;
    }
    switch (field.fieldKind) {
      case "map": {
        const map = value as Record<string, unknown>;
        const nested = field.mapKind === "message" && containsMap(field.message) ? field.message : undefined;
        const sorted: Record<string, unknown> = {};
        for (const key of sortedKeys(map)) {
          sorted[key] = nested === undefined ? map[key] : sortedCopy(nested, map[key]);
        }
        // Map fields cannot be members of a oneof.
        message[field.localName] = sorted;
        break;
      }
      case "message":
        if (containsMap(field.message)) {
          setFieldValue(field, message, sortedCopy(field.message, value));
        }
        break;
      case "list":
        if (field.listKind === "message" && containsMap(field.message)) {
          const nested = field.message;
          message[field.localName] = (value as unknown[]).map((item) => sortedCopy(nested, item));
        }
        break;
      default:
        break;
    }
  }
}

/**
 * The keys of a map in the order of `Array.prototype.sort` (by UTF-16 code
 * units), sorted in place by insertion for the few keys maps mostly have:
 * `sort` builds a work area of its own even for two keys (measured: about
 * 0.8 KB and 0.6 us per call, against 0.15 us).
 */
function sortedKeys(map: Record<string, unknown>): string[] {
  const keys = Object.keys(map);
  if (keys.length > 16) {
    return keys.sort();
  }
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i]!;
    let j = i - 1;
    while (j >= 0 && keys[j]! > key) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = key;
  }
  return keys;
}

/** A shallow copy of `message` with its maps sorted. */
function sortedCopy(schema: DescMessage, message: unknown): Record<string, unknown> {
  const copy = { ...(message as Record<string, unknown>) };
  sortMaps(schema, copy);
  return copy;
}

/** Sets a field, through its oneof when it is a member of one. */
function setFieldValue(field: DescField, message: Record<string, unknown>, value: unknown): void {
  if (field.oneof === undefined) {
    message[field.localName] = value;
  } else {
    message[field.oneof.localName] = { case: field.localName, value };
  }
}

function fieldValue(field: DescField, message: Record<string, unknown>): unknown {
  if (field.oneof === undefined) {
    return message[field.localName];
  }
  const selected = message[field.oneof.localName] as { case?: string; value?: unknown };
  return selected.case === field.localName ? selected.value : undefined;
}
