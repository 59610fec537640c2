import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import { CreatePaymentResponseSchema, PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { atomicEffects } from "../../src/server/atomic-effects.js";
import { createPostgresStore, type PostgresStore } from "../../src/store/postgres/postgres-store.js";
import { startIdempotencyTestServer } from "../support/idempotency-test-server.js";
import { useTestSchema } from "../support/postgres-database.js";
import { useTestDatabaseClock } from "../support/postgres-test-clock.js";
import { describeAtomicStoreConformance } from "../conformance/atomic-store-conformance.js";

const schema = useTestSchema("pgatomic", { create: true });
const clock = useTestDatabaseClock("pgatomicclock");
beforeAll(async () => {
  await schema.admin.query(`CREATE TABLE ${schema.name}.app_rows (id text NOT NULL)`);
});

describeAtomicStoreConformance("PostgreSQL", async () => {
  await clock.reset();
  const pool = clock.pool();
  const store = await createPostgresStore({ pool, schema: schema.name, table: schema.nextTable(), sweepIntervalMs: 0 });
  // Rows of earlier tests would be counted again: every test writes its own ids.
  const prefix = `${store.table}:`;
  return {
    store,
    async insertRow(client: pg.PoolClient, id: string) {
      await client.query(`INSERT INTO ${schema.name}.app_rows (id) VALUES ($1)`, [prefix + id]);
    },
    async countRows(id: string) {
      const result = await schema.admin.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${schema.name}.app_rows WHERE id = $1`,
        [prefix + id],
      );
      return result.rows[0]!.n;
    },
    travel: clock.travel,
    cleanup: () => pool.end(),
  };
});

describe("PostgreSQL atomic operations", () => {
  const key = { scope: "t\u0000", method: "demo.v1.PaymentService/CreatePayment", key: "k\u0001" };

  async function withStore(
    options: { schema?: string; table?: string },
    body: (store: PostgresStore) => Promise<void>,
  ): Promise<void> {
    const store = await schema.openStore({ ...options, sweepIntervalMs: 0 });
    try {
      await store.claim({ key, fingerprint: "fp", owner: "o", leaseMs: 1_000, graceMs: 0, expiresInMs: 2_000 });
      await body(store);
    } finally {
      await store.close();
    }
  }

  it("awaits async work on its client, with the claim locked against a takeover meanwhile", async () => {
    await withStore({}, async (store) => {
      const records = `${pg.escapeIdentifier(store.schema)}.${pg.escapeIdentifier(store.table)}`;
      const result = await store.completeWithin({ key, owner: "o", attempt: 1, retentionMs: 1 }, async (client) => {
        await client.query(`INSERT INTO ${schema.name}.app_rows (id) VALUES ('locked')`);
        const other = await schema.admin.connect();
        try {
          await other.query("BEGIN");
          await other.query("SET LOCAL lock_timeout = '200ms'");
          const takeover = other.query(`UPDATE ${records} SET owner = 'successor' WHERE owner = 'o'`);
          await expect(takeover).rejects.toThrow(/lock timeout/);
          await other.query("ROLLBACK");
        } finally {
          other.release();
        }
        return { value: "done", outcome: new Uint8Array([1]) };
      });
      expect(result).toEqual({ kind: "completed", value: "done" });
      expect((await store.get(key))?.owner).toBe("o");
      const rows = await schema.admin.query(`SELECT 1 FROM ${schema.name}.app_rows WHERE id = 'locked'`);
      expect(rows.rowCount).toBe(1);
    });
  });

  it("rolls back when a statement of the work failed, even if the work caught the error", async () => {
    await withStore({}, async (store) => {
      const work = async (client: pg.PoolClient) => {
        await client.query(`INSERT INTO ${schema.name}.app_rows (id) VALUES ('swallowed')`);
        await client.query("SELECT 1/0").catch(() => {});
        return { value: 1, outcome: new Uint8Array([1]) };
      };
      await expect(store.completeWithin({ key, owner: "o", attempt: 1, retentionMs: 1 }, work)).rejects.toThrow();
      const rows = await schema.admin.query(`SELECT 1 FROM ${schema.name}.app_rows WHERE id = 'swallowed'`);
      expect(rows.rowCount).toBe(0);
      expect((await store.get(key))?.status).toBe("in_progress");
    });
  });

  it("keeps phases of keys with U+0000 and odd table names, and resets them on an expired re-claim", async () => {
    const odd = `${schema.name} Odd "Schema"`;
    try {
      await withStore({ schema: odd, table: `Tab"le 名` }, async (store) => {
        expect(
          await store.recordPhase({ key, owner: "o", attempt: 1, name: "step\u0000", result: new Uint8Array([9]) }),
        ).toBe(true);
        expect(await store.getPhase({ key, name: "step\u0000" })).toEqual(new Uint8Array([9]));
        expect(await store.getPhase({ key, name: "step" })).toBeUndefined();
        // Expired by the database's clock: moved back in the row, as if two seconds had passed.
        await schema.admin.query(
          `UPDATE ${pg.escapeIdentifier(store.schema)}.${pg.escapeIdentifier(store.table)}
SET created_at = created_at - 2000, updated_at = updated_at - 2000, lease_until = lease_until - 2000, expires_at = expires_at - 2000`,
        );
        const reclaimed = await store.claim({
          key,
          fingerprint: "fp2",
          owner: "o2",
          leaseMs: 1_000,
          graceMs: 0,
          expiresInMs: 9_000,
        });
        expect(reclaimed.kind === "claimed" && reclaimed.replaced).toBe("expired");
        expect(await store.getPhase({ key, name: "step\u0000" })).toBeUndefined();
      });
    } finally {
      await schema.admin.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(odd)} CASCADE`);
    }
  });
});

describe("atomicEffects on PostgreSQL", () => {
  it("commits an async handler's writes with the key, or rolls them back and interrupts the key, keeping its phases", async () => {
    const store = await schema.openStore({ sweepIntervalMs: 0 });
    let runs = 0;
    const server = await startIdempotencyTestServer({
      store,
      payments: {
        async createPayment(req, ctx) {
          const run = ++runs;
          const effects = atomicEffects(ctx, store);
          const charge = await effects.phase("charge", async () => ({ chargeId: `ch_${run}` }));
          return effects.commit(async (client) => {
            await client.query(`INSERT INTO ${schema.name}.app_rows (id) VALUES ($1)`, [`e2e:${req.requestId}`]);
            if (run === 1) {
              throw new ConnectError("ledger rejected the payment", Code.Internal);
            }
            return create(CreatePaymentResponseSchema, {
              payment: { paymentId: `pay_${run}`, chargeId: charge.chargeId },
            });
          });
        },
      },
    });
    try {
      const client = createClient(
        PaymentService,
        createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "2" }),
      );
      const requestId = "3f0c8d4e-5b7a-4c1e-9d2f-6a8b0c1d2e3f";
      const count = async () =>
        (
          await schema.admin.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM ${schema.name}.app_rows WHERE id = $1`,
            [`e2e:${requestId}`],
          )
        ).rows[0]!.n;
      await expect(client.createPayment({ requestId })).rejects.toThrow(/ledger rejected the payment/);
      expect(await count()).toBe(0);
      const key = { scope: "", method: "demo.v1.PaymentService/CreatePayment", key: requestId };
      expect((await store.get(key))?.status).toBe("interrupted");
      expect(await store.getPhase({ key, name: "charge" })).toBeDefined();

      // The retry takes over, and the recorded charge of the first attempt is reused.
      const expected = create(CreatePaymentResponseSchema, { payment: { paymentId: "pay_2", chargeId: "ch_1" } });
      expect(await client.createPayment({ requestId })).toEqual(expected);
      expect(await client.createPayment({ requestId })).toEqual(expected);
      expect(runs).toBe(2);
      expect(await count()).toBe(1);
      expect((await store.get(key))?.status).toBe("completed");
    } finally {
      await server.close();
    }
  });
});
