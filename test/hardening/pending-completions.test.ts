import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { FixtureService, OpaqueResponseSchema } from "../../gen/fixture/v1/fixture_pb.js";
import {
  type IdempotencyContextValue,
  type IdempotencyEvent,
  type IdempotencyStore,
  createIdempotencyInterceptor,
  createSqliteStore,
  idempotencyContext,
} from "../../src/index.js";
import { type TestHttp2Server, startHttp2Server } from "../support/http2-server.js";
import { createManualClock } from "../support/manual-clock.js";
import { createTestTransport } from "../support/test-transports.js";

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const item of open.splice(0).reverse()) await item.close();
});

const leaseMs = 1_000;
const graceMs = 500;
const responseBytes = 100_000;

/**
 * A server on a store that takes claims but refuses every completion, as a
 * full disk with WAL slack did: outcomes can only wait in memory.
 */
async function startRefusingCompletions(limits: { maxPendingCompletions?: number; maxPendingBytes?: number }) {
  const clock = createManualClock();
  const sqlite = createSqliteStore({ path: ":memory:", sweepIntervalMs: 0, clock });
  open.push(sqlite);
  let refuse = true;
  const full = Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" });
  const store: IdempotencyStore = {
    ...sqlite,
    complete: (input) => (refuse ? Promise.reject(full) : sqlite.complete(input)),
    close: () => sqlite.close(),
  };
  const events: IdempotencyEvent[] = [];
  const contexts: (IdempotencyContextValue | undefined)[] = [];
  const server: TestHttp2Server = await startHttp2Server({
    interceptors: [
      createIdempotencyInterceptor({
        store,
        leaseMs: leaseMs,
        leaseGraceMs: graceMs,
        telemetry: false,
        onEvent: (e) => events.push(e),
        ...limits,
      }),
    ],
    routes: (router) =>
      router.service(FixtureService, {
        opaque(req, ctx) {
          contexts.push(ctx.values.get(idempotencyContext));
          return create(OpaqueResponseSchema, {
            text: req.text,
            executions: contexts.length,
            filler: new Uint8Array(req.responseSize),
          });
        },
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
  return { client, events, contexts, clock, sqlite, refuseWrites: (value: boolean) => (refuse = value) };
}

describe("outcomes waiting for their write are bounded in memory", () => {
  it("holds at most maxPendingBytes, drops the rest with an event, and never lets a retry run silently", async () => {
    const { client, events, contexts, clock } = await startRefusingCompletions({ maxPendingBytes: 5 * responseBytes });
    const keys = Array.from({ length: 20 }, (_, i) => `k-${i}`);
    for (const key of keys) {
      // Every caller gets its answer even though nothing could be written.
      expect((await client.opaque({ key, text: key, responseSize: responseBytes })).text).toBe(key);
    }
    const dropped = events.filter((e) => e.type === "completion_dropped");
    // Each encoded outcome is a little over 100 KB: four fit in 500 KB, the other 16 are dropped.
    expect(dropped.length).toBe(16);
    expect(dropped.every((e) => (e.responseBytes ?? 0) > responseBytes)).toBe(true);

    // A duplicate of a held outcome is answered from memory, without running or claiming.
    const held = keys[0]!;
    const replay = await client.opaque({ key: held, text: held, responseSize: responseBytes });
    expect(replay.executions).toBe(1);
    expect(contexts).toHaveLength(20);

    // A dropped one stays claimed: its retry waits, and after the lease and grace it is taken
    // over as attempt 2, so the handler knows (takeover: true).
    const lost = keys[19]!;
    clock.advance(leaseMs + graceMs);
    const again = await client.opaque({ key: lost, text: lost, responseSize: responseBytes });
    expect(again.executions).toBe(21);
    expect(contexts.at(-1)).toMatchObject({ attempt: 2, takeover: true });
  });

  it("writes held outcomes once the store takes writes again, and frees their memory", async () => {
    const { client, events, refuseWrites, sqlite } = await startRefusingCompletions({ maxPendingCompletions: 3 });
    for (const key of ["a", "b", "c", "d"]) {
      await client.opaque({ key, text: key });
    }
    expect(events.filter((e) => e.type === "completion_dropped")).toHaveLength(1);
    refuseWrites(false);
    await expect
      .poll(
        async () => (await sqlite.get({ scope: "", method: "fixture.v1.FixtureService/Opaque", key: "c" }))?.status,
        {
          timeout: 5_000,
        },
      )
      .toBe("completed");
    expect(events.filter((e) => e.type === "completed")).toHaveLength(3);
    // Room again: while the store refuses again, three new outcomes are held, not dropped.
    refuseWrites(true);
    for (const key of ["e", "f", "g"]) {
      await client.opaque({ key, text: key });
    }
    expect(events.filter((e) => e.type === "completion_dropped")).toHaveLength(1);
  });
});
