import type { DescField, DescMessage } from "@bufbuild/protobuf";
import { scalarZeroValue } from "@bufbuild/protobuf/reflect";

/**
 * A dotted path into a request message resolved to its fields, such as
 * `order.id` to the field `order` of the request and `id` of its message.
 * Every field but the last is a singular message field outside any oneof.
 */
export interface FieldPath {
  /** The path as written in the policy. */
  readonly path: string;
  /** The fields along the path, the top-level one first. */
  readonly fields: readonly DescField[];
}

/**
 * Resolves a dotted path of proto field names against a message, or says
 * in a sentence why it cannot be resolved.
 */
export function resolveFieldPath(
  message: DescMessage,
  path: string,
): { readonly ok: true; readonly value: FieldPath } | { readonly ok: false; readonly problem: string } {
  const fields: DescField[] = [];
  let current: DescMessage | undefined = message;
  for (const name of path.split(".")) {
    if (current === undefined) {
      const parent = fields[fields.length - 1];
      return { ok: false, problem: `field ${parent?.name ?? ""} in path "${path}" is not a singular message` };
    }
    const field: DescField | undefined = current.fields.find((f) => f.name === name);
    if (field === undefined) {
      return { ok: false, problem: `${current.typeName} has no field ${name} (path "${path}")` };
    }
    if (field.oneof !== undefined) {
      return {
        ok: false,
        problem: `field ${current.typeName}.${name} in path "${path}" is part of oneof ${field.oneof.name}`,
      };
    }
    fields.push(field);
    current = field.fieldKind === "message" ? field.message : undefined;
  }
  return { ok: true, value: { path, fields } };
}

/**
 * The value at a path of a message: undefined when a message on the way is
 * unset.
 */
export function readFieldPath(message: object, path: FieldPath): unknown {
  let value: unknown = message;
  for (const field of path.fields) {
    if (value === undefined || value === null) {
      return undefined;
    }
    value = (value as Record<string, unknown>)[field.localName];
  }
  return value;
}

/**
 * A shallow copy of `message` with the field at `path` cleared (set to its
 * zero value, or unset for a message field), copying what leads to it
 * instead of changing it. A path through an unset message changes nothing.
 */
export function clearFieldPath(message: Record<string, unknown>, path: FieldPath, depth = 0): Record<string, unknown> {
  const field = path.fields[depth];
  if (field === undefined) {
    return message;
  }
  const copy = { ...message };
  if (depth === path.fields.length - 1) {
    copy[field.localName] = zeroValue(field);
    return copy;
  }
  const nested = message[field.localName];
  if (nested !== undefined && nested !== null) {
    copy[field.localName] = clearFieldPath(nested as Record<string, unknown>, path, depth + 1);
  }
  return copy;
}

function zeroValue(field: DescField): unknown {
  switch (field.fieldKind) {
    case "list":
      return [];
    case "map":
      return {};
    case "message":
      return undefined;
    case "enum":
      return 0;
    case "scalar":
      return scalarZeroValue(field.scalar, field.longAsString);
  }
}
