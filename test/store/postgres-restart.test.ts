import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClaimInput, CompleteInput, IdempotencyRecord } from "../../src/store/idempotency-store.js";
import { createPostgresStore, type PostgresStore } from "../../src/store/postgres/postgres-store.js";
import { type PrivateCluster, startPrivateCluster } from "../support/private-postgres-cluster.js";

/** Retries `operation` while it rejects (the server is down or restarting), for up to 30 s. */
async function untilAnswered<T>(operation: () => Promise<T>, failures: { count: number }): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return await operation();
    } catch (error) {
      failures.count++;
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

describe("the PostgreSQL store across a crash of the database", () => {
  let server: PrivateCluster;
  let store: PostgresStore;

  beforeAll(async () => {
    // fsync on: an immediate restart must lose no committed transaction.
    server = await startPrivateCluster({ fsync: true });
    store = await createPostgresStore({
      connectionString: server.connectionString,
      schema: "restart",
      sweepIntervalMs: 0,
      connectionTimeoutMs: 1_000,
    });
  }, 60_000);

  afterAll(async () => {
    await store?.close();
    await server?.remove();
  });

  it("never reports a completion it committed as a lost claim, when the crash took its answer", async () => {
    const pairs: { input: ClaimInput; record: IdempotencyRecord }[] = [];
    const lostCompletions: boolean[] = [];
    const claimFailures = { count: 0 };
    const completeFailures = { count: 0 };
    let stopping = false;

    /** Claims and completes new keys until told to stop, retrying every operation the crash cut off. */
    async function worker(): Promise<void> {
      while (!stopping) {
        const input: ClaimInput = {
          key: { scope: "", method: "demo.v1.PaymentService/CreatePayment", key: randomUUID() },
          fingerprint: "fp",
          owner: randomUUID(),
          leaseMs: 60_000,
          graceMs: 10_000,
          expiresInMs: 3_600_000,
        };
        const claimed = await untilAnswered(() => store.claim(input), claimFailures);
        // A retried claim whose first try committed finds its own record.
        expect(claimed.record.owner).toBe(input.owner);
        const done: CompleteInput = {
          key: input.key,
          owner: input.owner,
          attempt: claimed.record.attempt,
          outcome: new TextEncoder().encode(input.owner),
          retentionMs: 3_600_000,
        };
        const before = completeFailures.count;
        const completed = await untilAnswered(() => store.complete(done), completeFailures);
        if (!completed) lostCompletions.push(completeFailures.count > before);
        pairs.push({ input, record: claimed.record });
      }
    }

    const workers = Array.from({ length: 32 }, () => worker());
    // Each crash catches some completions committed and not yet answered; a
    // few crashes make it near certain that one does.
    for (let crash = 0; crash < 4; crash++) {
      await new Promise((resolve) => setTimeout(resolve, 300));
      await server.restart("immediate");
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    stopping = true;
    await Promise.all(workers);

    // Operations were cut off, and every completion still succeeded.
    expect(claimFailures.count + completeFailures.count).toBeGreaterThan(0);
    expect(lostCompletions).toEqual([]);
    for (const { input } of pairs) {
      const record = await store.get(input.key);
      expect(record).toMatchObject({ status: "completed", owner: input.owner, attempt: 1 });
      expect(new TextDecoder().decode(record!.outcome)).toBe(input.owner);
    }
    expect(pairs.length).toBeGreaterThan(32);
  }, 120_000);
});
