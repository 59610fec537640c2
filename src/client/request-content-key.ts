import { type DescMessage, type DescMethod, type MessageInitShape, create, toBinary } from "@bufbuild/protobuf";

/**
 * The key under which a pending request ID is kept: the method's full name
 * and a 64-bit hash of the request's binary encoding with the request ID
 * field cleared, so that the same content of the same method finds the same
 * entry. Map entries count in the order the caller inserted them.
 *
 * Not a cryptographic hash: Web Crypto's digest is missing on non-secure
 * origins, and the key only has to tell the few pending operations of one
 * client apart. Two contents that collided would share a request ID, which
 * the server refuses with REQUEST_ID_REUSED: a clear error, never a second
 * charge.
 */
export function requestContentKey(method: DescMethod, request: object, requestIdField: string): string {
  const schema: DescMessage = method.input;
  const cleared = create(schema, { ...(request as MessageInitShape<DescMessage>), [requestIdField]: "" });
  return `${method.parent.typeName}/${method.name}#${fnv1a64(toBinary(schema, cleared))}`;
}

// FNV-1a in two independent 32-bit lanes, so that no BigInt is needed.
function fnv1a64(bytes: Uint8Array): string {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (const byte of bytes) {
    a = Math.imul(a ^ byte, 0x01000193) >>> 0;
    b = Math.imul(b ^ byte, 0x01000193) >>> 0;
    b = (b ^ (b >>> 15)) >>> 0;
  }
  return a.toString(16).padStart(8, "0") + b.toString(16).padStart(8, "0");
}
