import { describe, expect, it } from "vitest";
import type { RecordSummary, StoreStats } from "../../src/store/idempotency-store-admin.js";
import { openPostgresStoreAdmin } from "../../src/store/postgres/postgres-store-admin.js";
import { postgresClockMs } from "../../src/store/postgres/postgres-statements.js";
import { useFilledStoreCli } from "../support/filled-store-cli.js";
import { filledStoreCounts } from "../support/filled-store-server.js";
import { testConnectionString, useTestSchema } from "../support/postgres-database.js";
import { runCli } from "../support/run-cli.js";

const createPayment = "demo.v1.PaymentService/CreatePayment";
const table = "payment_keys";

const schema = useTestSchema("admincli");
const filled = useFilledStoreCli(async () => ({
  store: await schema.openStore({ table, sweepIntervalMs: 0 }),
  storeArgs: ["--postgres", testConnectionString, "--schema", schema.name, "--table", table],
  // As if the database's clock had moved on by `ms` since these rows were written.
  async backdate(keys, ms) {
    await schema.admin.query(
      `UPDATE ${schema.name}.${table}
SET created_at = created_at - $1, updated_at = updated_at - $1, lease_until = lease_until - $1, expires_at = expires_at - $1
WHERE key = ANY($2)`,
      [ms, keys],
    );
  },
}));
const { cli, cliJson } = filled;

describe("on PostgreSQL", () => {
  it("stats counts the records of the table and sizes it", async () => {
    const before = Date.now();
    const stats = await cliJson<StoreStats>(["stats"]);
    expect(stats).toMatchObject({ location: `"${schema.name}"."${table}"`, ...filledStoreCounts });
    expect(stats.oldestInProgress).toMatchObject({ key: filled.keys.running, status: "in_progress" });
    expect(stats.oldestInProgress?.leaseUntil).toBeGreaterThan(before);
    expect(stats.sizeBytes).toBeGreaterThan(8192);
  });

  it("keys list filters by age, status and scope", async () => {
    const [all, old, acme] = await Promise.all([
      cliJson<RecordSummary[]>(["keys", "list"]),
      cliJson<RecordSummary[]>([
        "keys",
        "list",
        "--older-than",
        "1h",
        "--status",
        "completed",
        "--method",
        createPayment,
      ]),
      cliJson<RecordSummary[]>(["keys", "list", "--scope", "acme"]),
    ]);
    expect(all).toHaveLength(9);
    expect(all[0]?.key).toBe(filled.keys.running);
    expect(all.find((r) => r.key === filled.keys.fresh)?.outcomeBytes).toBeGreaterThan(0);
    expect(old.map((r) => r.key).sort()).toEqual([...filled.keys.old].sort());
    expect(acme.map((r) => [r.scope, r.key])).toEqual([["acme", filled.keys.shared]]);
  });

  it("keys list and stats read ages by the database's clock", async () => {
    const [stats, interrupted] = await Promise.all([
      cliJson<StoreStats>(["stats"]),
      cliJson<RecordSummary[]>(["keys", "list", "--status", "interrupted"]),
    ]);
    const db = await schema.admin.query<{ now: string }>(`SELECT ${postgresClockMs} AS now`);
    expect(Math.abs(stats.readAt - Number(db.rows[0]!.now))).toBeLessThan(5_000);
    expect(interrupted.map((r) => [r.key, r.status, r.attempt])).toEqual([[filled.keys.interrupted, "interrupted", 1]]);
  });

  it("keys show decodes the stored response", async () => {
    const shown = await cliJson<{ status: string; outcome: Record<string, unknown> }>([
      "keys",
      "show",
      filled.keys.fresh,
    ]);
    expect(shown.status).toBe("completed");
    expect(shown.outcome).toMatchObject({
      kind: "response",
      type: "demo.v1.CreatePaymentResponse",
      json: { payment: { paymentId: filled.freshResponse.payment?.paymentId } },
    });
  });

  it("keys evict deletes the record, so that the next call runs the handler again", async () => {
    const runsBefore = filled.server.runs.length;
    expect(await cliJson<unknown>(["keys", "evict", filled.keys.fresh, "--yes"])).toEqual({
      evicted: true,
      scope: "",
      method: createPayment,
      key: filled.keys.fresh,
    });
    const rerun = await filled.repeatFresh();
    expect(filled.server.runs.length).toBe(runsBefore + 1);
    expect(rerun.payment?.paymentId).not.toBe(filled.freshResponse.payment?.paymentId);
    const unknown = await cli(["keys", "evict", "no-such-key", "--yes"], 2);
    expect(unknown.stderr).toBe('connect-idempotency: no record with request ID "no-such-key"\n');
  });

  it("sweep deletes the expired record", async () => {
    expect(await cliJson<unknown>(["sweep"])).toEqual({ deleted: 1 });
    const remaining = await schema.admin.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${schema.name}.${table} WHERE method = 'fixture.v1.FixtureService/Opaque'`,
    );
    expect(remaining.rows[0]?.n).toBe(0);
  });

  it("fails with exit status 2 for a table that does not exist, without creating it", async () => {
    const result = await runCli([
      "stats",
      "--postgres",
      testConnectionString,
      "--schema",
      schema.name,
      "--table",
      "nope",
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `connect-idempotency: ${testConnectionString}: PostgreSQL has no connect-idempotency records table "${schema.name}"."nope"\n`,
    );
    const found = await schema.admin.query("SELECT to_regclass($1) AS t", [`${schema.name}.nope`]);
    expect(found.rows[0]?.t).toBeNull();
  });

  it("opened read-only, as read commands open it, refuses evict and sweep", async () => {
    const admin = await openPostgresStoreAdmin({
      connectionString: testConnectionString,
      schema: schema.name,
      table,
      readonly: true,
    });
    try {
      expect((await admin.stats()).completed).toBe(6);
      await expect(admin.evict({ scope: "", method: createPayment, key: filled.keys.old[0] })).rejects.toThrow(
        "opened read-only",
      );
      await expect(admin.sweep()).rejects.toThrow("opened read-only");
    } finally {
      await admin.close();
    }
  });
});
