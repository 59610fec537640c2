import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import type { ClaimInput, ClaimResult } from "../../src/store/idempotency-store.js";
import { postgresClockMs } from "../../src/store/postgres/postgres-statements.js";
import { testConnectionString, useTestSchema } from "../support/postgres-database.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const claimProcess = fileURLToPath(new URL("../support/postgres-claim-process.ts", import.meta.url));
// Installed by `.ci/run` (the Debian package `faketime`).
const libfaketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const skewMs = 60_000;

const schema = useTestSchema("pgclockskew");

/** Claims in a child process whose clock runs `skew` ahead (libfaketime), on its own store of `table`. */
async function claimFromSkewedProcess(
  table: string,
  input: ClaimInput,
  skew: string,
): Promise<{ localNow: number; result: ClaimResult }> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--import", "tsx", claimProcess, testConnectionString, schema.name, table, JSON.stringify(input)],
    {
      cwd: repoRoot,
      // Timers stay real: only the wall clock the process reads is skewed.
      env: { ...process.env, LD_PRELOAD: libfaketime, FAKETIME: skew, FAKETIME_DONT_FAKE_MONOTONIC: "1" },
    },
  );
  return JSON.parse(stdout.trim()) as { localNow: number; result: ClaimResult };
}

async function databaseNow(): Promise<number> {
  const result = await schema.admin.query<{ now: string }>(`SELECT ${postgresClockMs} AS now`);
  return Number(result.rows[0]!.now);
}

function claimInput(owner: string): ClaimInput {
  return {
    key: { scope: "tenant", method: "demo.v1.PaymentService/CreatePayment", key: "skewed" },
    fingerprint: "fp",
    owner,
    leaseMs: 30_000,
    graceMs: 10_000,
    expiresInMs: 3_600_000,
  };
}

describe("the PostgreSQL store's clock", () => {
  it("is the database server's: an application server 60 s ahead writes and judges times by the database", async () => {
    expect(existsSync(libfaketime), `${libfaketime} is missing: apt-get install -y faketime`).toBe(true);
    const table = schema.nextTable();
    // Creates the table, so that the children only claim.
    const store = await schema.openStore({ table, sweepIntervalMs: 0 });
    try {
      const before = await databaseNow();
      const skewed = await claimFromSkewedProcess(table, claimInput("skewed-owner"), `+${skewMs / 1000}s`);
      const after = await databaseNow();
      // The child's clock really was ahead.
      expect(skewed.localNow - Date.now()).toBeGreaterThan(skewMs - 10_000);
      expect(skewed.result.kind).toBe("claimed");
      const record = (await store.get(claimInput("").key))!;
      // Every time in the row is the database's, not the child's.
      expect(record.createdAt).toBeGreaterThanOrEqual(before);
      expect(record.createdAt).toBeLessThanOrEqual(after);
      expect(record.leaseUntil).toBe(record.createdAt + 30_000);
      expect(record.expiresAt).toBe(record.createdAt + 3_600_000);
      expect(skewed.result.record).toMatchObject({ createdAt: record.createdAt, leaseUntil: record.leaseUntil });
      expect(skewed.result.record.readAt).toBe(record.createdAt);
    } finally {
      await store.close();
    }
  });

  it("keeps a live claim from a server 60 s ahead, which by its own clock would see lease and grace over", async () => {
    const table = schema.nextTable();
    const store = await schema.openStore({ table, sweepIntervalMs: 0 });
    try {
      // This process, on the right time, holds a 30 s lease with a 10 s grace.
      const first = await store.claim(claimInput("first-owner"));
      expect(first.kind).toBe("claimed");
      const skewed = await claimFromSkewedProcess(table, claimInput("skewed-owner"), `+${skewMs / 1000}s`);
      expect(skewed.result.kind).toBe("existing");
      expect(skewed.result.record).toMatchObject({ owner: "first-owner", attempt: 1, status: "in_progress" });
      // The child read the record at the database's time, within the lease.
      expect(skewed.result.record.readAt).toBeLessThan(first.record.leaseUntil);
      expect((await store.get(claimInput("").key))?.owner).toBe("first-owner");
      // And the first owner still completes it.
      expect(
        await store.complete({
          key: claimInput("").key,
          owner: "first-owner",
          attempt: 1,
          outcome: new Uint8Array([1]),
          retentionMs: 60_000,
        }),
      ).toBe(true);
    } finally {
      await store.close();
    }
  });

  it("gives a server 60 s behind a lease by the database's clock, not one that ended before it began", async () => {
    const table = schema.nextTable();
    const store = await schema.openStore({ table, sweepIntervalMs: 0 });
    try {
      const skewed = await claimFromSkewedProcess(table, claimInput("late-owner"), `-${skewMs / 1000}s`);
      expect(skewed.localNow - Date.now()).toBeLessThan(-(skewMs - 10_000));
      expect(skewed.result.kind).toBe("claimed");
      const now = await databaseNow();
      // A lease by the child's clock would have ended 30 s ago; by the database's it runs.
      expect(skewed.result.record.leaseUntil).toBeGreaterThan(now);
      expect((await store.claim(claimInput("other-owner"))).kind).toBe("existing");
    } finally {
      await store.close();
    }
  });
});
