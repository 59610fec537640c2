import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeStoredOutcome } from "../../src/protocol/index.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { runCli } from "../support/run-cli.js";

const method = "demo.v1.PaymentService/CreatePayment";
const day = 24 * 60 * 60 * 1000;
const keys = { replaying: "k-replaying", tombstone: "k-tombstone", declined: "k-declined" } as const;

let dir: string;
let db: string;

const cli = async (args: readonly string[]) => {
  const run = await runCli([...args, "--db", db]);
  expect(run.code, run.stderr).toBe(0);
  return run.stdout;
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "admin-cli-tombstones-"));
  db = join(dir, "store.db");
  const store = createSqliteStore({ path: db, sweepIntervalMs: 0 });
  const complete = async (key: string, outcome: Uint8Array, outcomeCode: number) => {
    const record = { scope: "", method, key };
    await store.claim({
      key: record,
      fingerprint: "f".repeat(64),
      owner: key,
      leaseMs: 30_000,
      graceMs: 2_000,
      expiresInMs: day,
    });
    await store.complete({
      key: record,
      owner: key,
      attempt: 1,
      outcome,
      retentionMs: day,
      tombstoneMs: 30 * day,
      outcomeCode,
    });
  };
  const response = encodeStoredOutcome({
    kind: "response",
    response: new Uint8Array([10, 1, 120]),
    header: new Headers(),
    trailer: new Headers(),
  });
  const declined = encodeStoredOutcome({
    kind: "error",
    error: new ConnectError("card declined", Code.FailedPrecondition),
  });
  await complete(keys.replaying, response, 0);
  await complete(keys.tombstone, response, 0);
  await complete(keys.declined, declined, Code.FailedPrecondition);
  await store.close();
  // Two days ago: past the replay window of a day, inside the tombstone's 30.
  const writer = new Database(db);
  try {
    const ms = 2 * day;
    writer
      .prepare(
        `UPDATE connect_idempotency_records
SET created_at = created_at - ?, updated_at = updated_at - ?, lease_until = lease_until - ?, expires_at = expires_at - ?,
  replay_until = replay_until - ?
WHERE key IN (?, ?)`,
      )
      .run(ms, ms, ms, ms, ms, keys.tombstone, keys.declined);
  } finally {
    writer.close();
  }
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("tombstones in the admin CLI", () => {
  it("stats counts tombstones apart from replayed records", async () => {
    const stats = await cli(["stats"]);
    expect(stats).toContain("records    3 (0 in progress, 0 interrupted, 1 completed, 2 tombstoned)");
    expect(stats).toMatch(/TOMBSTONED\n/);
    const json = JSON.parse(await cli(["stats", "--json"])) as { tombstoned: number; completed: number };
    expect(json).toMatchObject({ tombstoned: 2, completed: 1 });
  });

  it("keys list filters by status tombstoned", async () => {
    const json = JSON.parse(await cli(["keys", "list", "--status", "tombstoned", "--json"])) as { key: string }[];
    expect(json.map((r) => r.key).sort()).toEqual([keys.declined, keys.tombstone]);
  });

  it("keys show names the stage: replay, then tombstone with the original code", async () => {
    const replaying = await cli(["keys", "show", keys.replaying]);
    expect(replaying).toContain("status       completed");
    expect(replaying).toMatch(/replay until \S+ \(in 23h/);
    expect(replaying).toContain(
      "stage        replay: duplicates get the stored outcome; a tombstone follows from replay until",
    );

    const declined = await cli(["keys", "show", keys.declined]);
    expect(declined).toContain("status       tombstoned");
    expect(declined).toContain("stage        tombstone (original code 9): the outcome is no longer replayed");
    const json = JSON.parse(await cli(["keys", "show", keys.declined, "--json"])) as Record<string, unknown>;
    expect(json).toMatchObject({ status: "tombstoned", outcomeCode: 9 });
    expect(typeof json.replayUntil).toBe("number");
  });

  it("sweep drops the bodies of tombstones and keeps them; keys show says so", async () => {
    expect(JSON.parse(await cli(["sweep", "--json"]))).toEqual({ deleted: 0 });
    const shown = await cli(["keys", "show", keys.declined]);
    expect(shown).toContain("status       tombstoned");
    expect(shown).toContain(
      "outcome      dropped past its replay window; it answered with code 9 (failed_precondition)",
    );
    expect(shown).not.toContain("MISMATCH");
    const replaying = await cli(["keys", "show", keys.replaying]);
    expect(replaying).toContain("outcome      response");
    expect(await cli(["keys", "corrupt"])).toContain("No damaged records.");
  });
});
