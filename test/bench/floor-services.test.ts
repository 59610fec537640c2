import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { evaluateTargets, type ScenarioResult } from "../../bench/bench-results.js";
import { createBenchService } from "../../bench/bench-services.js";
import { invokeInProcess } from "../../bench/invoke-in-process.js";
import { spreadOf } from "../../bench/latency-stats.js";
import { paymentRequest } from "../../bench/payment-request.js";
import { openSqliteFloor } from "../../bench/sqlite-floor.js";
import { CreatePaymentResponseSchema } from "../../gen/demo/v1/payments_pb.js";
import { createTestSchema, testConnectionString } from "../support/postgres-database.js";

// A floor row only bounds what any layer reaches if it really makes the
// writes it stands for: a claim before the handler, the response after it
// (with the payment row, for the commit floor), one record per request ID.
describe("the bench's floor scenarios", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "bench-floor-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const records = (path: string) => {
    const db = new Database(path, { readonly: true });
    try {
      return db.prepare("SELECT key, owner, status, outcome FROM connect_idempotency_records ORDER BY key").all() as {
        key: string;
        owner: string;
        status: string;
        outcome: Uint8Array | null;
      }[];
    } finally {
      db.close();
    }
  };

  it("the SQLite floor claims and completes each key in the store's table, a turn's operations in one transaction", async () => {
    const path = join(dir, "pairs.db");
    const floor = await openSqliteFloor(path);
    const keys = Array.from({ length: 64 }, (_, i) => `key-${String(i).padStart(2, "0")}`);
    try {
      await Promise.all(keys.map((key) => floor.claim(key, `owner-${key}`)));
      // Read through a second connection between the turns: the claims are committed.
      expect(records(path).map((r) => [r.key, r.status])).toEqual(keys.map((key) => [key, "in_progress"]));
      await Promise.all(keys.map((key, i) => floor.complete(key, `owner-${key}`, new Uint8Array([i]))));
      // Another owner's completion finds no claim of its own.
      await expect(floor.complete("key-00", "someone-else", new Uint8Array([9]))).rejects.toThrow(
        /the floor's completion found no claim of key-00/,
      );
      // A duplicate claim fails on the unique key, as the store's claim would find the record.
      await expect(floor.claim("key-01", "owner-key-01")).rejects.toThrow(/UNIQUE constraint failed/);
    } finally {
      await floor.close();
    }
    expect(records(path)).toEqual(
      keys.map((key, i) => ({ key, owner: `owner-${key}`, status: "completed", outcome: Buffer.from([i]) })),
    );
  });

  it("a failed operation rolls back the batch it was in and rejects every caller of it", async () => {
    const path = join(dir, "failed.db");
    const floor = await openSqliteFloor(path);
    try {
      await floor.claim("taken", "a");
      const batch = [floor.claim("fresh", "b"), floor.claim("taken", "c")];
      const settled = await Promise.allSettled(batch);
      expect(settled.map((s) => s.status)).toEqual(["rejected", "rejected"]);
      // The next turn's batch runs on.
      await floor.claim("later", "d");
    } finally {
      await floor.close();
    }
    expect(records(path).map((r) => r.key)).toEqual(["later", "taken"]);
  });

  it("layer-sqlite-floor answers the handler's response and stores exactly it, once per request ID", async () => {
    const sqlitePath = join(dir, "layer.db");
    const service = await createBenchService({
      setup: { kind: "floor", db: "sqlite-normal" },
      store: { kind: "sqlite-normal", sqlitePath },
    });
    const requestIds = Array.from({ length: 8 }, () => crypto.randomUUID()).sort();
    let answers: Awaited<ReturnType<typeof invokeInProcess>>[];
    try {
      answers = await Promise.all(requestIds.map((id) => invokeInProcess(service, paymentRequest(id))));
      // No deduplication on the floor: a duplicate fails on the claim's unique key instead of running twice.
      await expect(invokeInProcess(service, paymentRequest(requestIds[0] as string))).rejects.toThrow(
        /UNIQUE constraint failed/,
      );
    } finally {
      await service.close();
    }
    const stored = records(sqlitePath);
    expect(stored.map((r) => [r.key, r.status])).toEqual(requestIds.map((id) => [id, "completed"]));
    expect(stored.map((r) => fromBinary(CreatePaymentResponseSchema, r.outcome as Uint8Array))).toEqual(
      answers.map((a) => a.message),
    );
    expect(answers.map((a) => a.message.payment?.paymentId)).toEqual(requestIds.map((id) => `pay_${id}`));
  });

  it("sqlite-commit-floor inserts the payment row and the outcome in one transaction, after the claim", async () => {
    const sqlitePath = join(dir, "commit.db");
    const service = await createBenchService({
      setup: { kind: "floor", db: "sqlite-normal", handler: "commit" },
      store: { kind: "sqlite-normal", sqlitePath },
    });
    const requestIds = Array.from({ length: 10 }, () => crypto.randomUUID()).sort();
    let answers: Awaited<ReturnType<typeof invokeInProcess>>[];
    try {
      answers = await Promise.all(requestIds.map((id) => invokeInProcess(service, paymentRequest(id))));
    } finally {
      await service.close();
    }
    const db = new Database(sqlitePath, { readonly: true });
    try {
      const rows = db
        .prepare(
          `SELECT r.key, r.status, r.outcome, p.payment_id FROM connect_idempotency_records AS r
           JOIN payments AS p ON p.request_id = r.key ORDER BY r.key`,
        )
        .all() as { key: string; status: string; outcome: Uint8Array; payment_id: string }[];
      expect(rows.map((r) => [r.key, r.status, r.payment_id])).toEqual(
        requestIds.map((id) => [id, "completed", `pay_${id}`]),
      );
      expect(rows.map((r) => fromBinary(CreatePaymentResponseSchema, r.outcome))).toEqual(
        answers.map((a) => a.message),
      );
    } finally {
      db.close();
    }
  });

  it("postgres-commit-floor commits the payment row and the outcome together, after the claim", async () => {
    const schema = await createTestSchema("bench_floor");
    const service = await createBenchService({
      setup: { kind: "floor", db: "postgres", handler: "commit" },
      store: { kind: "postgres", postgresUrl: testConnectionString, postgresSchema: schema.name },
    });
    const requestIds = Array.from({ length: 12 }, () => crypto.randomUUID()).sort();
    try {
      const answers = await Promise.all(requestIds.map((id) => invokeInProcess(service, paymentRequest(id))));
      await expect(invokeInProcess(service, paymentRequest(requestIds[0] as string))).rejects.toThrow(
        /duplicate key value/,
      );
      const stored = await schema.admin.query<{ key: string; outcome: Buffer; payment_id: string }>(
        `SELECT r.key, r.outcome, p.payment_id FROM ${schema.name}.floor_records AS r
         JOIN ${schema.name}.payments AS p ON p.request_id = r.key ORDER BY r.key`,
      );
      expect(stored.rows.map((r) => r.key)).toEqual(requestIds);
      expect(stored.rows.map((r) => r.payment_id)).toEqual(requestIds.map((id) => `pay_${id}`));
      expect(stored.rows.map((r) => fromBinary(CreatePaymentResponseSchema, r.outcome))).toEqual(
        answers.map((a) => a.message),
      );
    } finally {
      await service.close();
      await schema.drop();
    }
  });

  it("has no floor for a setup it does not build, and says which", async () => {
    await expect(
      createBenchService({
        setup: { kind: "floor", db: "sqlite-full" },
        store: { kind: "sqlite-full", sqlitePath: join(dir, "none.db") },
      }),
    ).rejects.toThrow("no floor for sqlite-full");
  });
});

describe("a target's floor", () => {
  // Rounds of calls per second per scenario, as a run would record them.
  const result = (scenario: string, perRound: readonly number[]): ScenarioResult => {
    const rounds = perRound.map((callsPerSecond, i) => ({
      round: i + 1,
      process: 0,
      calls: callsPerSecond,
      errors: 0,
      elapsedMs: 1000,
      callsPerSecond,
      p50Ms: 1,
      p99Ms: 2,
    }));
    const spread = spreadOf(perRound);
    return {
      scenario,
      description: scenario,
      kind: "layer",
      concurrency: 64,
      callsPerSecond: spread.median,
      callsPerSecondSpread: spread,
      p50Ms: 1,
      p99Ms: 2,
      serverCpuMicrosPerCall: 1,
      errors: 0,
      ratioToBaseline: 1,
      ratioToBaselineSpread: spread,
      rounds,
    };
  };
  const peer = "layer-node-idempotency-redis";
  const target = (floorRounds: readonly number[]) =>
    evaluateTargets([
      result("layer-sqlite-normal", [500, 600, 700]),
      result("layer-sqlite-floor", floorRounds),
      result(peer, [1000, 1000, 1000]),
    ]).find((t) => t.name === `layer-sqlite-normal >= 1.25 x ${peer}`);

  it("is the floor scenario's ratio to the same reference, round by round, and marks a target it misses out of reach", () => {
    const judged = target([1100, 1200, 1240]);
    expect(judged?.measured).toBeCloseTo(0.6, 10);
    expect(judged?.floor?.scenario).toBe("layer-sqlite-floor");
    expect(judged?.floor?.measured).toBeCloseTo(1.2, 10);
    expect(judged?.outOfReach).toBe(true);
  });

  it("leaves a target in reach when the floor's rounds reach the required ratio", () => {
    const judged = target([1100, 1200, 1400]);
    expect(judged?.floor?.spread.q3).toBeCloseTo(1.3, 10);
    expect(judged?.outOfReach).toBe(false);
    expect(judged?.status).toBe("missed");
  });

  it("divides a growth target's floor by the floor of its reference, not by ours", () => {
    const growth = evaluateTargets([
      result("layer-sqlite-1m", [700, 760, 800]),
      result("layer-sqlite-10k", [1000, 1000, 1000]),
      result("layer-sqlite-floor-1m", [1500, 1500, 1500]),
      result("layer-sqlite-floor-10k", [2000, 2000, 2000]),
    ]).find((t) => t.name === "layer-sqlite-1m >= 0.9 x layer-sqlite-10k");
    expect(growth?.measured).toBeCloseTo(0.76, 10);
    expect(growth?.floor?.scenario).toBe("layer-sqlite-floor-1m");
    // 1500 / 2000, not 1500 / 1000.
    expect(growth?.floor?.measured).toBeCloseTo(0.75, 10);
    expect(growth?.outOfReach).toBe(true);
  });

  it("has no floor, and is never out of reach, when the floor scenario did not run", () => {
    const judged = evaluateTargets([result("layer-sqlite-normal", [500]), result(peer, [1000])]).find(
      (t) => t.name === `layer-sqlite-normal >= 1.25 x ${peer}`,
    );
    expect(judged?.floor).toBeUndefined();
    expect(judged?.outOfReach).toBe(false);
  });
});
