import { readFileSync } from "node:fs";

/**
 * The version of this package, read from its package.json, which sits some
 * levels above this file both in the sources and in the build (`dist/`).
 */
export function readPackageVersion(): string {
  for (let dir = new URL(".", import.meta.url); ; dir = new URL("..", dir)) {
    const manifest = readManifest(new URL("package.json", dir));
    if (manifest?.name === "connect-idempotency" && typeof manifest.version === "string") {
      return manifest.version;
    }
    if (dir.pathname === "/") {
      throw new Error("package.json of connect-idempotency not found");
    }
  }
}

function readManifest(url: URL): { name?: unknown; version?: unknown } | undefined {
  try {
    return JSON.parse(readFileSync(url, "utf8")) as { name?: unknown; version?: unknown };
  } catch {
    return undefined;
  }
}
