import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IdempotencyStore, RecordKey } from "../../src/store/idempotency-store.js";
import type { RecordSummary } from "../../src/store/idempotency-store-admin.js";
import { createPostgresStore } from "../../src/store/postgres/postgres-store.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { testConnectionString, useTestSchema } from "../support/postgres-database.js";
import { runCli } from "../support/run-cli.js";

const method = "shop.v1.Orders/Place";
const day = 86_400_000;
const keyOf = (i: number): RecordKey => ({ scope: "acme", method, key: `order-${i}` });

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "admin-cli-corrupt-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});
const schema = useTestSchema("corrupt_cli");

/** Completes keys 0..n-1, each with its own outcome. */
async function fill(store: IdempotencyStore, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const claim = await store.claim({
      key: keyOf(i),
      fingerprint: `fp-${i}`,
      owner: "o",
      leaseMs: 30_000,
      graceMs: 1_000,
      expiresInMs: day,
    });
    expect(claim.kind).toBe("claimed");
    await store.complete({
      key: keyOf(i),
      owner: "o",
      attempt: 1,
      outcome: Buffer.from(`outcome ${i}`),
      retentionMs: day,
    });
  }
}

interface StoreCase {
  readonly name: string;
  /** Opens a store with 4 completed keys, and damages the outcomes of keys 1 and 3 behind its back. */
  setup(): Promise<{ store: IdempotencyStore; args: string[] }>;
}

const cases: StoreCase[] = [
  {
    name: "SQLite",
    async setup() {
      const path = join(dir, "store.db");
      const store = createSqliteStore({ path, sweepIntervalMs: 0 });
      await fill(store, 4);
      const raw = new Database(path);
      raw.prepare("UPDATE connect_idempotency_records SET outcome = X'00' WHERE key IN ('order-1', 'order-3')").run();
      raw.close();
      return { store, args: ["--db", path] };
    },
  },
  {
    name: "PostgreSQL",
    async setup() {
      const table = schema.nextTable();
      const store = await createPostgresStore({
        connectionString: testConnectionString,
        schema: schema.name,
        table,
        sweepIntervalMs: 0,
      });
      await fill(store, 4);
      await schema.admin.query(
        `UPDATE ${schema.name}.${table} SET outcome = '\\x00'::bytea WHERE key IN ('order-1', 'order-3')`,
      );
      return { store, args: ["--postgres", testConnectionString, "--schema", schema.name, "--table", table] };
    },
  },
];

describe.each(cases)("keys corrupt and keys evict --corrupt on $name", ({ setup }) => {
  it("lists the damaged records, refuses to evict them unconfirmed, evicts them with --yes, and leaves the rest", async () => {
    const { store, args } = await setup();
    try {
      const listed = await runCli(["keys", "corrupt", "--json", ...args]);
      expect(listed.code, listed.stderr).toBe(0);
      const records = JSON.parse(listed.stdout) as RecordSummary[];
      expect(records.map((r) => r.key)).toEqual(["order-1", "order-3"]);
      expect(records[0]).toMatchObject({ scope: "acme", method, status: "completed", outcomeBytes: 1 });

      const table = await runCli(["keys", "corrupt", ...args]);
      expect(table.stdout).toContain(
        "2 damaged records: calls with these request IDs fail with DATA_LOSS STORE_CORRUPT",
      );
      const shown = await runCli(["keys", "show", "order-1", ...args]);
      expect(shown.stdout).toContain("checksum     MISMATCH: this record is damaged");
      const intact = await runCli(["keys", "show", "order-0", "--json", ...args]);
      expect(JSON.parse(intact.stdout)).toMatchObject({ key: "order-0", damaged: false });

      const refused = await runCli(["keys", "evict", "--corrupt", ...args]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toBe(
        "connect-idempotency: refusing to evict 2 damaged records without confirmation (stdin is not a terminal): pass --yes\n",
      );
      const mixed = await runCli(["keys", "evict", "order-1", "--corrupt", "--yes", ...args]);
      expect(mixed.code).toBe(2);
      expect(mixed.stderr).toContain("--corrupt evicts every damaged record");

      const evicted = await runCli(["keys", "evict", "--corrupt", "--yes", "--json", ...args]);
      expect(evicted.code, evicted.stderr).toBe(0);
      expect(JSON.parse(evicted.stdout)).toEqual({ evicted: 2 });
      const none = await runCli(["keys", "corrupt", ...args]);
      expect(none.stdout).toBe("No damaged records.\n");

      // The intact ones still replay; the evicted ones run afresh.
      for (const i of [0, 2]) {
        expect((await store.get(keyOf(i)))?.status).toBe("completed");
      }
      expect(await store.get(keyOf(1))).toBeUndefined();
    } finally {
      await store.close();
    }
    // Eight CLI processes, a few seconds each on a busy machine.
  }, 200_000);
});
