import * as crypto from "node:crypto";

// `crypto.hash` skips building a Hash object, which is most of the cost for
// inputs this small; it arrived in Node 20.12, and older 20.x builds lack it.
const oneShot = (crypto as { hash?: typeof crypto.hash }).hash;

/** The hex SHA-256 of `data` (a string is hashed as UTF-8). */
export function sha256Hex(data: string | Uint8Array): string {
  return oneShot === undefined
    ? crypto.createHash("sha256").update(data).digest("hex")
    : oneShot("sha256", data, "hex");
}
