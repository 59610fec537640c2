import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { DERIVED_KEY_NAMESPACE, type DerivedKeyInput, deriveRequestId, uuidV5 } from "../../src/server/derived-key.js";

const run = promisify(execFile);
const script = fileURLToPath(new URL("./support/derive-keys-main.ts", import.meta.url));
const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

const base: DerivedKeyInput = {
  scope: "tenant-a",
  method: "demo.v1.PaymentService/CreatePayment",
  key: "3f0c8d4e-5b7a-4c1e-9d2f-6a8b0c1d2e3f",
  name: "charge",
};

const uuidV5Pattern = /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

async function deriveInChild(inputs: readonly DerivedKeyInput[]): Promise<string[]> {
  const { stdout } = await run(process.execPath, ["--import", "tsx", script, JSON.stringify(inputs)], {
    cwd: repoRoot,
  });
  return stdout.trim().split("\n");
}

describe("uuidV5", () => {
  it("matches the RFC 9562 name-based UUID of a published example", () => {
    // The DNS namespace of RFC 9562 and the well-known v5 UUID of www.example.com.
    expect(uuidV5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "www.example.com")).toBe(
      "2ed6657d-e927-568b-95e1-2665a8aea6a2",
    );
  });
});

describe("deriveRequestId", () => {
  it("is a lowercase UUID v5 with the RFC variant", () => {
    for (const name of ["charge", "notify", "", "ünïcödé", "a\nb"]) {
      const key = deriveRequestId({ ...base, name });
      expect(key).toMatch(uuidV5Pattern);
    }
  });

  it("never changes: retries across an upgrade must derive the same downstream keys", () => {
    // Pinned on purpose. A new namespace or name encoding would make every
    // request in flight during a deploy run its downstream calls twice.
    expect(DERIVED_KEY_NAMESPACE).toBe("c5656c0f-e5eb-411c-883c-6e0ff46e750d");
    expect(deriveRequestId(base)).toBe(
      uuidV5(DERIVED_KEY_NAMESPACE, JSON.stringify([base.scope, base.method, base.key, base.name])),
    );
    // Cross-checked with Python: uuid.uuid5(UUID(namespace), json.dumps([...], separators=(",", ":"))).
    expect(deriveRequestId(base)).toBe("a9f739fb-2d3f-5b03-8093-c1cd09c0cdb7");
  });

  it("differs per step, request ID, method and scope", () => {
    const variants: DerivedKeyInput[] = [
      base,
      { ...base, name: "refund" },
      { ...base, key: "3f0c8d4e-5b7a-4c1e-9d2f-6a8b0c1d2e40" },
      { ...base, method: "demo.v1.PaymentService/RefundPayment" },
      { ...base, scope: "tenant-b" },
      // Fields that would run together under a naive concatenation.
      { ...base, scope: "tenant-a/", method: "demo.v1.PaymentService/CreatePayment" },
      { ...base, scope: "", name: "charge" },
      { ...base, scope: "x", method: "", key: "", name: "" },
      { ...base, scope: "", method: "x", key: "", name: "" },
    ];
    const keys = variants.map(deriveRequestId);
    expect(new Set(keys).size).toBe(variants.length);
  });

  it("is the same in other processes, started at different times", async () => {
    const inputs = [base, { ...base, name: "notify" }, { ...base, key: "opaque key 1", scope: "tenant-β" }];
    const here = inputs.map(deriveRequestId);
    const first = await deriveInChild(inputs);
    const second = await deriveInChild(inputs);
    expect(first).toEqual(here);
    expect(second).toEqual(here);
  });
});
