import { createHash } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { FixtureService } from "../../gen/fixture/v1/fixture_pb.js";
import {
  type IdempotencyEvent,
  createIdempotencyInterceptor,
  createSqliteStore,
  hashRecordKey,
} from "../../src/index.js";
import { type TestHttp2Server, startHttp2Server } from "../support/http2-server.js";
import { createTestTransport } from "../support/test-transports.js";

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const item of open.splice(0).reverse()) await item.close();
});

const method = "fixture.v1.FixtureService/Opaque";

/** The key hash of the first event for `key`, from a server with these interceptor options. */
async function eventKeyHash(key: string, keyHashSecret?: string): Promise<string> {
  const store = createSqliteStore({ path: ":memory:", sweepIntervalMs: 0 });
  open.push(store);
  const events: IdempotencyEvent[] = [];
  const server: TestHttp2Server = await startHttp2Server({
    interceptors: [
      createIdempotencyInterceptor({
        store,
        telemetry: false,
        onEvent: (e) => events.push(e),
        ...(keyHashSecret === undefined ? {} : { keyHashSecret }),
      }),
    ],
    routes: (router) =>
      router.service(FixtureService, {
        opaque: (req) => ({ text: req.text }),
        plain: (req) => ({ text: req.text }),
        async upload() {
          return { size: 0n };
        },
      }),
  });
  open.push(server);
  const client = createClient(
    FixtureService,
    createTestTransport(server.baseUrl, { protocol: "connect", binary: true, gzip: false }),
  );
  await client.opaque({ key, text: "t" });
  return events[0]!.keyHash;
}

describe("event key hashes are keyed", () => {
  it("cannot be reversed by hashing candidate keys without the secret", async () => {
    const key = "order-004217";
    const hash = await eventKeyHash(key);
    // What an attacker with the events but without the secret would try: every order number.
    const unkeyed = (candidate: string) =>
      createHash("sha256")
        .update(JSON.stringify(["", method, candidate]))
        .digest("hex")
        .slice(0, 32);
    let found: string | undefined;
    for (let n = 0; n < 10_000 && found === undefined; n++) {
      const candidate = `order-${String(n).padStart(6, "0")}`;
      if (unkeyed(candidate) === hash) found = candidate;
    }
    expect(found).toBeUndefined();
  });

  it("match across processes that share the secret, and differ where the secret differs", async () => {
    const key = "order-004217";
    const a = await eventKeyHash(key, "deployment secret");
    expect(await eventKeyHash(key, "deployment secret")).toBe(a);
    expect(a).toBe(hashRecordKey({ scope: "", method, key }, "deployment secret"));
    expect(await eventKeyHash(key, "another secret")).not.toBe(a);
    // Without a secret, each interceptor makes its own.
    expect(await eventKeyHash(key)).not.toBe(await eventKeyHash(key));
  });
});
