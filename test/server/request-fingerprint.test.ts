import { createHash } from "node:crypto";
import * as http2 from "node:http2";
import { create, fromJson, type MessageInitShape, toBinary, toJsonString } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FixtureService, OpaqueRequestSchema } from "../../gen/fixture/v1/fixture_pb.js";
import { fingerprintRequest } from "../../src/protocol/index.js";
import { type IdempotencyTestServer, startIdempotencyTestServer } from "../support/idempotency-test-server.js";
import { createTestTransport } from "../support/test-transports.js";

const keyField = OpaqueRequestSchema.field.key;

type OpaqueInit = MessageInitShape<typeof OpaqueRequestSchema>;

function fingerprint(init: Record<string, unknown>): string {
  return fingerprintRequest(OpaqueRequestSchema, create(OpaqueRequestSchema, init as OpaqueInit), keyField);
}

const base = {
  key: "k",
  text: "hello",
  labels: { b: "2", a: "1", "10": "ten", "-1": "minus" },
  numbers: [3, 1, 2],
  delay: { seconds: 5n, nanos: 1 },
  responseSize: 0,
};

describe("fingerprintRequest()", () => {
  it("is a hex SHA-256 that ignores the request ID", () => {
    expect(fingerprint(base)).toMatch(/^[0-9a-f]{64}$/);
    expect(fingerprint({ ...base, key: "other" })).toBe(fingerprint(base));
    expect(fingerprint({ ...base, key: "" })).toBe(fingerprint(base));
  });

  it("does not depend on the order of map entries", () => {
    const reordered = { ...base, labels: { "-1": "minus", a: "1", "10": "ten", b: "2" } };
    expect(fingerprint(reordered)).toBe(fingerprint(base));
  });

  it("orders map entries as Array.prototype.sort does, for few entries and many", () => {
    // Fingerprints of stored records must not change: entries go into the
    // hash in the order of `sort` (UTF-16 code units), whichever way they
    // are sorted.
    const keys = ["b", "a", "10", "9", "-1", "B", "é", "\u{1f600}", "\uff5e", "", "aa", "a\u0000"];
    for (const count of [0, 1, 2, 5, 12, 16, 17, 40]) {
      const labels: Record<string, string> = {};
      for (let i = 0; i < count; i++) {
        labels[keys[i % keys.length]! + "x".repeat(Math.floor(i / keys.length))] = String(i);
      }
      const sorted: Record<string, string> = {};
      for (const key of Object.keys(labels).sort()) sorted[key] = labels[key]!;
      const canonical = create(OpaqueRequestSchema, { ...base, key: "", labels });
      // Insertion order decides the binary encoding: `sorted` encodes as is.
      const expected = toBinary(OpaqueRequestSchema, { ...canonical, labels: sorted }, { writeUnknownFields: false });
      expect(fingerprint({ ...base, labels })).toBe(createHash("sha256").update(expected).digest("hex"));
    }
  });

  it.each<[string, Record<string, unknown>]>([
    ["text", { text: "hello!" }],
    ["a map value", { labels: { ...base.labels, a: "one" } }],
    ["a map key", { labels: { b: "2", A: "1", "10": "ten", "-1": "minus" } }],
    ["a map entry less", { labels: { b: "2", a: "1", "10": "ten" } }],
    ["the order of a repeated field", { numbers: [1, 3, 2] }],
    ["a repeated element", { numbers: [3, 1, 2, 0] }],
    ["a nested message", { delay: { seconds: 5n, nanos: 2 } }],
    ["a nested message unset", { delay: undefined }],
    ["an integer", { responseSize: 1 }],
  ])("changes with %s", (_, change) => {
    expect(fingerprint({ ...base, ...change })).not.toBe(fingerprint(base));
  });

  it("leaves the handler's message untouched", () => {
    const message = create(OpaqueRequestSchema, base);
    const before = JSON.stringify(Object.keys(message.labels));
    fingerprintRequest(OpaqueRequestSchema, message, keyField);
    expect(message.key).toBe("k");
    expect(JSON.stringify(Object.keys(message.labels))).toBe(before);
  });

  it("sorts maps nested in messages, lists, oneofs and map values, without touching the message", () => {
    // google.protobuf.Value nests Struct maps through a oneof, ListValue
    // lists and Struct map values. Its string_value, a oneof member, stands
    // in for the request ID field: clearing it adds a property the encoding ignores.
    const field = ValueSchema.field.stringValue;
    const message = fromJson(ValueSchema, { z: 1, a: { y: [1, { b: { d: 1, c: 2 } }] }, m: [{ k: 1, j: 2 }] });
    const reordered = fromJson(ValueSchema, { m: [{ j: 2, k: 1 }], a: { y: [1, { b: { c: 2, d: 1 } }] }, z: 1 });
    const before = toJsonString(ValueSchema, message);
    const innermost = () => {
      const a = message.kind.case === "structValue" ? message.kind.value.fields.a : undefined;
      const y = a?.kind.case === "structValue" ? a.kind.value.fields.y : undefined;
      const item = y?.kind.case === "listValue" ? y.kind.value.values[1] : undefined;
      const b = item?.kind.case === "structValue" ? item.kind.value.fields.b : undefined;
      return b?.kind.case === "structValue" ? Object.keys(b.kind.value.fields) : [];
    };
    expect(innermost()).toEqual(["d", "c"]);
    expect(fingerprintRequest(ValueSchema, message, field)).toBe(fingerprintRequest(ValueSchema, reordered, field));
    expect(toJsonString(ValueSchema, message)).toBe(before);
    expect(innermost()).toEqual(["d", "c"]);
  });

  describe("over HTTP", () => {
    let server: IdempotencyTestServer;

    beforeAll(async () => {
      server = await startIdempotencyTestServer();
    });

    afterAll(async () => {
      await server.close();
    });

    it("gives JSON bodies with fields and map entries in another order the same fingerprint", async () => {
      const first = await postJson(server.baseUrl, {
        key: "json-order",
        text: "t",
        labels: { x: "1", y: "2" },
        numbers: [1, 2],
      });
      const second = await postJson(server.baseUrl, {
        numbers: [1, 2],
        labels: { y: "2", x: "1" },
        text: "t",
        key: "json-order",
      });
      expect(first.status).toBe(200);
      expect(second).toEqual({ ...first, replayed: "true" });
      expect(first.replayed).toBeUndefined();
      expect(server.runs).toHaveLength(1);
      const changed = await postJson(server.baseUrl, {
        key: "json-order",
        text: "t",
        labels: { x: "1" },
        numbers: [1, 2],
      });
      expect(changed.status).toBe(400);
      expect(changed.body).toContain("REQUEST_ID_REUSED");
      expect(server.runs).toHaveLength(1);
    });

    it("gives the same request in binary and JSON the same fingerprint", async () => {
      const request = { key: "codec", text: "t", labels: { b: "2", a: "1" }, numbers: [1], delay: { seconds: 2n } };
      const binary = createClient(
        FixtureService,
        createTestTransport(server.baseUrl, { protocol: "grpc", binary: true, gzip: false }),
      );
      const json = createClient(
        FixtureService,
        createTestTransport(server.baseUrl, { protocol: "connect", binary: false, gzip: false }),
      );
      const runs = server.runs.length;
      const first = await binary.opaque(request);
      expect(await json.opaque({ ...request, labels: { a: "1", b: "2" } })).toEqual(first);
      expect(server.runs.length - runs).toBe(1);
    });
  });
});

/** Posts a hand-written JSON body to FixtureService/Opaque over the Connect protocol. */
async function postJson(
  baseUrl: string,
  body: Record<string, unknown>,
): Promise<{ status: number; body: string; replayed: string | undefined }> {
  const session = http2.connect(baseUrl);
  try {
    return await new Promise((resolve, reject) => {
      const stream = session.request({
        ":method": "POST",
        ":path": "/fixture.v1.FixtureService/Opaque",
        "content-type": "application/json",
      });
      let status = 0;
      let replayed: string | undefined;
      let text = "";
      stream.on("response", (headers) => {
        status = Number(headers[":status"]);
        replayed = headers["idempotency-replayed"] as string | undefined;
      });
      stream.setEncoding("utf8");
      stream.on("data", (chunk: string) => (text += chunk));
      stream.on("end", () => resolve({ status, body: text, replayed }));
      stream.on("error", reject);
      stream.end(JSON.stringify(body));
    });
  } finally {
    session.close();
  }
}
