import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { FixtureService } from "../../gen/fixture/v1/fixture_pb.js";
import { findErrorReason } from "../../src/errors/idempotency-error.js";
import { usePerTestScratch } from "../support/per-test-scratch.js";
import { type ServerProcess, startServerProcess } from "../support/server-process.js";
import { createTestTransport } from "../support/test-transports.js";

const script = fileURLToPath(new URL("../support/sqlite-fixture-server.ts", import.meta.url));
const scratch = usePerTestScratch("sqlite-file-deleted-");
const keyCount = 100;

async function start(): Promise<ServerProcess> {
  const server = await startServerProcess({
    script,
    env: { SQLITE_PATH: join(scratch.dir, "idem.db"), EVENTS_FILE: join(scratch.dir, "events.jsonl") },
  });
  scratch.closeAfter(() => server.kill());
  return server;
}

function client(server: ServerProcess) {
  return createClient(
    FixtureService,
    createTestTransport(server.baseUrl, { protocol: "connect", binary: true, gzip: false }),
  );
}

function events(): { type: string; operation?: string; message: string }[] {
  const file = join(scratch.dir, "events.jsonl");
  return existsSync(file)
    ? readFileSync(file, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line))
    : [];
}

/** What one call got: `ok <pid> <executions>` or `<code> <reason>`. */
async function outcome(call: Promise<{ text: string; executions: number }>): Promise<string> {
  try {
    const response = await call;
    return `ok ${response.text} ${response.executions}`;
  } catch (error) {
    const connectError = ConnectError.from(error);
    return `${Code[connectError.code]} ${findErrorReason(connectError) ?? ""}`.trim();
  }
}

function tally(results: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const result of results) counts[result] = (counts[result] ?? 0) + 1;
  return counts;
}

describe("the database file deleted under a running server", () => {
  it.each([
    ["rm idem.db*", ["", "-wal", "-shm"]],
    ["rm idem.db", [""]],
  ])(
    "after %s the old process fails closed with STORE_UNAVAILABLE and an event naming the cause",
    async (_, suffixes) => {
      const a = await start();
      const keys = Array.from({ length: keyCount }, (_, i) => `key-${i}`);
      const first = await Promise.all(keys.map((key) => outcome(client(a).opaque({ key, text: "t" }))));
      expect(tally(first)).toEqual({ [`ok ${a.pid} 1`]: keyCount });

      for (const suffix of suffixes) rmSync(join(scratch.dir, `idem.db${suffix}`));
      await delay(100);
      const afterRm = await Promise.all(
        [...keys, "new-key"].map((key) => outcome(client(a).opaque({ key, text: "t" }))),
      );
      // No replay from a file nobody else can see, no handler run: fail closed.
      expect(tally(afterRm)).toEqual({ "Unavailable STORE_UNAVAILABLE": keyCount + 1 });
      const storeErrors = events().filter((event) => event.type === "store_error");
      expect(storeErrors).toHaveLength(keyCount + 1);
      expect(storeErrors[0]).toMatchObject({
        operation: "claim",
        message: expect.stringMatching(
          /the SQLite file .*idem\.db was deleted or replaced while the store had it open .*Restart with the original file/,
        ),
      });
      expect(events().filter((event) => event.type === "problem:file_lost")).toHaveLength(1);
      // Methods without a request ID never touch the store.
      expect((await client(a).plain({ text: "p" })).text).toBe("p");

      // The documented limit: a process on the new, empty file has no record
      // of the completed keys and runs them again.
      const b = await start();
      const onNewFile = await Promise.all(
        keys.slice(0, 10).map((key) => outcome(client(b).opaque({ key, text: "t" }))),
      );
      expect(tally(onNewFile)).toEqual({ [`ok ${b.pid} 1`]: 10 });
      // The old process keeps refusing, even now that a file of that name exists again.
      expect(await outcome(client(a).opaque({ key: keys[0]!, text: "t" }))).toBe("Unavailable STORE_UNAVAILABLE");
    },
  );
});
