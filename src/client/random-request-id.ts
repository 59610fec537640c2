// What request IDs need of Web Crypto; both members may be missing.
interface RandomSource {
  readonly randomUUID?: () => string;
  readonly getRandomValues?: (array: Uint8Array) => Uint8Array;
}

/**
 * Makes a new request ID: a random UUIDv4 from `crypto.randomUUID` where the
 * runtime has it, built from `crypto.getRandomValues` otherwise. Browsers
 * offer `randomUUID` only in secure contexts (HTTPS and localhost), so a page
 * served over plain HTTP under another name has only `getRandomValues`.
 */
export function randomRequestId(): string {
  // Structural, so that the check also compiles without the DOM library.
  const webCrypto = (globalThis as { readonly crypto?: RandomSource }).crypto;
  if (typeof webCrypto?.randomUUID === "function") {
    return webCrypto.randomUUID();
  }
  if (typeof webCrypto?.getRandomValues !== "function") {
    throw new TypeError("connect-idempotency: no crypto.getRandomValues to make a request ID; pass generateRequestId");
  }
  const bytes = webCrypto.getRandomValues(new Uint8Array(16));
  // RFC 9562: version 4 in the high nibble of byte 6, variant 10 in byte 8.
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
