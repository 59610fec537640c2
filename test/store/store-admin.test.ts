import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { IdempotencyStore, RecordKey } from "../../src/store/idempotency-store.js";
import type { IdempotencyStoreAdmin } from "../../src/store/idempotency-store-admin.js";
import { openPostgresStoreAdmin } from "../../src/store/postgres/postgres-store-admin.js";
import { createPostgresStore } from "../../src/store/postgres/postgres-store.js";
import { openSqliteStoreAdmin } from "../../src/store/sqlite/sqlite-store-admin.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { t0 } from "../support/conformance-claim.js";
import { testConnectionString, useTestSchema } from "../support/postgres-database.js";
import { useTestDatabaseClock } from "../support/postgres-test-clock.js";

/** A store, an admin on the same records, and the clock both read. */
interface AdminSubject {
  readonly store: IdempotencyStore;
  readonly admin: IdempotencyStoreAdmin;
  /** Moves the clock of the store and the admin forward. */
  travel(ms: number): Promise<void>;
  close(): Promise<void>;
}

const method = "demo.v1.PaymentService/CreatePayment";
const hour = 3_600_000;
const keyOf = (key: string, scope = ""): RecordKey => ({ scope, method, key });

const schema = useTestSchema("pgadmin");
const clock = useTestDatabaseClock("pgadminclock");

/**
 * Holds both admins to `IdempotencyStoreAdmin`: counts per status (with
 * interrupted records), ages and expiry by the store's clock, and sweeping.
 */
function describeStoreAdmin(name: string, open: () => Promise<AdminSubject>): void {
  describe(`IdempotencyStoreAdmin: ${name}`, () => {
    let subject: AdminSubject;

    beforeEach(async () => {
      subject = await open();
    });

    afterEach(async () => {
      await subject.close();
    });

    /** Fills the store: an old completed record (expired), a running claim, an interrupted one taken over and interrupted again. */
    async function fill(): Promise<void> {
      const { store } = subject;
      const claim = (key: string, owner: string, scope = "") =>
        store.claim({
          key: keyOf(key, scope),
          fingerprint: "fp",
          owner,
          leaseMs: 30_000,
          graceMs: 10_000,
          expiresInMs: 24 * hour,
        });
      await claim("old", "o-old");
      expect(
        await store.complete({
          key: keyOf("old"),
          owner: "o-old",
          attempt: 1,
          outcome: new Uint8Array(7),
          retentionMs: 2 * hour,
        }),
      ).toBe(true);
      await subject.travel(3 * hour);
      await claim("running", "o-running");
      await claim("interrupted", "o-1", "acme");
      expect(await store.interrupt({ key: keyOf("interrupted", "acme"), owner: "o-1", attempt: 1 })).toBe(true);
      expect((await claim("interrupted", "o-2", "acme")).kind).toBe("claimed");
      expect(await store.interrupt({ key: keyOf("interrupted", "acme"), owner: "o-2", attempt: 2 })).toBe(true);
      await subject.travel(1_000);
    }

    it("counts records per status and method, interrupted ones apart, as of the store's clock", async () => {
      await fill();
      const stats = await subject.admin.stats();
      expect(stats).toMatchObject({
        inProgress: 1,
        interrupted: 1,
        completed: 1,
        expired: 1,
        byMethod: [{ method, inProgress: 1, interrupted: 1, completed: 1 }],
        oldestInProgress: { key: "running", status: "in_progress", attempt: 1 },
      });
      // The lease of the running claim is judged by the store's clock, which also stamps the stats.
      expect(stats.oldestInProgress!.leaseUntil - stats.readAt).toBeGreaterThan(25_000);
      expect(stats.oldestInProgress!.leaseUntil - stats.readAt).toBeLessThanOrEqual(29_000);
    });

    it("lists by status and age, with attempts and the store's clock in every record", async () => {
      await fill();
      const { admin } = subject;
      const interrupted = await admin.list({ status: "interrupted", limit: 10 });
      expect(interrupted.map((r) => [r.scope, r.key, r.status, r.attempt, r.outcomeBytes])).toEqual([
        ["acme", "interrupted", "interrupted", 2, 0],
      ]);
      expect((await admin.list({ status: "in_progress", limit: 10 })).map((r) => r.key)).toEqual(["running"]);
      expect((await admin.list({ status: "completed", limit: 10 })).map((r) => [r.key, r.outcomeBytes])).toEqual([
        ["old", 7],
      ]);
      // Three hours old by the store's clock, whatever the wall clock says.
      expect((await admin.list({ olderThanMs: 2 * hour, limit: 10 })).map((r) => r.key)).toEqual(["old"]);
      const all = await admin.list({ limit: 10 });
      expect(all.map((r) => r.key)).toEqual(expect.arrayContaining(["old", "running", "interrupted"]));
      for (const record of all) {
        expect(record.readAt - record.createdAt).toBeGreaterThanOrEqual(1_000);
      }
      const [found] = await admin.find("interrupted");
      expect(found).toMatchObject({ status: "interrupted", attempt: 2, owner: "o-2", scope: "acme" });
      expect(found!.readAt).toBeGreaterThanOrEqual(found!.updatedAt + 1_000);
    });

    it("sweeps what expired by the store's clock, and evicts whatever the status", async () => {
      await fill();
      const { admin, store } = subject;
      expect(await admin.sweep()).toBe(1);
      expect(await store.get(keyOf("old"))).toBeUndefined();
      expect(await admin.sweep()).toBe(0);
      expect(await admin.evict(keyOf("interrupted", "acme"))).toBe(true);
      expect(await admin.evict(keyOf("interrupted", "acme"))).toBe(false);
      expect((await admin.stats()).interrupted).toBe(0);
    });
  });
}

describeStoreAdmin("SQLite", async () => {
  const dir = await mkdtemp(join(tmpdir(), "connect-idempotency-admin-"));
  const path = join(dir, "records.db");
  let now = t0;
  const store = createSqliteStore({ path, sweepIntervalMs: 0, clock: { now: () => now } });
  const admin = openSqliteStoreAdmin({ path, clock: { now: () => now } });
  return {
    store,
    admin,
    travel: async (ms) => {
      now += ms;
    },
    async close() {
      await admin.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describeStoreAdmin("PostgreSQL", async () => {
  await clock.reset();
  const pool = clock.pool();
  const table = schema.nextTable();
  const store = await createPostgresStore({ pool, schema: schema.name, table, sweepIntervalMs: 0 });
  // The admin's own connection sees the same moved clock.
  const url = new URL(testConnectionString);
  url.searchParams.set("options", pool.options.options as string);
  const admin = await openPostgresStoreAdmin({ connectionString: url.toString(), schema: schema.name, table });
  return {
    store,
    admin,
    travel: clock.travel,
    async close() {
      await admin.close();
      await store.close();
      await pool.end();
    },
  };
});
