import { Code, createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { isStoreCorruptError } from "../../src/index.js";
import { ErrorReason } from "../../src/client/index.js";
import type { RecordKey } from "../../src/store/idempotency-store.js";
import type { PostgresStore } from "../../src/store/postgres/postgres-store.js";
import { fromPostgresText, toPostgresText } from "../../src/store/postgres/postgres-statements.js";
import { describeError, expectConnectError } from "../support/connect-assertions.js";
import { type IdempotencyTestServer, startIdempotencyTestServer } from "../support/idempotency-test-server.js";
import { useTestSchema } from "../support/postgres-database.js";
import { createTestTransport } from "../support/test-transports.js";

const schema = useTestSchema("corruption_pg");

const method = "shop.v1.Orders/Place";
const day = 86_400_000;
const outcomeOf = (i: number) => new TextEncoder().encode(`response ${i} `.repeat(8));
const claimOf = (key: RecordKey, owner: string) => ({
  key,
  fingerprint: "fp",
  owner,
  leaseMs: 30_000,
  graceMs: 1_000,
  expiresInMs: day,
});

let stores: PostgresStore[] = [];
afterEach(async () => {
  await Promise.all(stores.map((store) => store.close()));
  stores = [];
});

async function open(): Promise<PostgresStore> {
  const store = await schema.openStore({ sweepIntervalMs: 0 });
  stores.push(store);
  return store;
}

async function completed(store: PostgresStore, key: RecordKey, i = 1): Promise<void> {
  expect((await store.claim(claimOf(key, `owner-${i}`))).kind).toBe("claimed");
  expect(await store.complete({ key, owner: `owner-${i}`, attempt: 1, outcome: outcomeOf(i), retentionMs: day })).toBe(
    true,
  );
}

describe("a PostgreSQL record whose checksum does not match", () => {
  it("is neither replayed nor taken for absent, by claim and get", async () => {
    const store = await open();
    const key = { scope: "acme", method, key: "order-1" };
    await completed(store, key);
    await schema.admin.query(`UPDATE ${schema.name}.${store.table} SET outcome = 'altered'::bytea`);
    await expect(store.claim(claimOf(key, "retry"))).rejects.toSatisfy(isStoreCorruptError);
    await expect(store.get(key)).rejects.toThrow(/order-1.* is damaged \(its checksum does not match what it holds\)/);
  });

  it("is not replaced when its expiry is damaged: the request does not run again", async () => {
    const store = await open();
    const key = { scope: "acme", method, key: "order-1" };
    await completed(store, key);
    await schema.admin.query(`UPDATE ${schema.name}.${store.table} SET expires_at = 0`);
    await expect(store.claim(claimOf(key, "retry"))).rejects.toSatisfy(isStoreCorruptError);
    const rows = await schema.admin.query(`SELECT owner FROM ${schema.name}.${store.table}`);
    expect(rows.rows).toEqual([{ owner: "owner-1" }]);
  });

  it.each([
    ["its replay end moved back (a replayed record would become a tombstone)", "replay_until = replay_until - 1000"],
    ["its replay end cleared (a tombstone would replay, then its empty body)", "replay_until = NULL"],
    ["its outcome code changed", "outcome_code = 13"],
    ["its body dropped without a new checksum", "outcome = NULL"],
  ])("with a tombstone period, is refused when %s", async (_, damage) => {
    const store = await open();
    const key = { scope: "acme", method, key: "order-1" };
    expect((await store.claim(claimOf(key, "owner-1"))).kind).toBe("claimed");
    await store.complete({
      key,
      owner: "owner-1",
      attempt: 1,
      outcome: outcomeOf(1),
      retentionMs: day,
      tombstoneMs: 30 * day,
      outcomeCode: 0,
    });
    expect((await store.get(key))?.replayUntil).toBeDefined();
    await schema.admin.query(`UPDATE ${schema.name}.${store.table} SET ${damage}`);
    await expect(store.claim(claimOf(key, "retry"))).rejects.toSatisfy(isStoreCorruptError);
    await expect(store.get(key)).rejects.toSatisfy(isStoreCorruptError);
    // The sweeper's first stage leaves a damaged row alone rather than vouch for it.
    await store.sweep({ limit: 10 });
    await expect(store.get(key)).rejects.toSatisfy(isStoreCorruptError);
  });

  it("stays readable when it was written before checksums (NULL): no false alarm", async () => {
    const store = await open();
    const key = { scope: "acme", method, key: "order-1" };
    await completed(store, key);
    await schema.admin.query(`UPDATE ${schema.name}.${store.table} SET checksum = NULL`);
    const claim = await store.claim(claimOf(key, "retry"));
    expect(claim.kind).toBe("existing");
    expect(Buffer.from(claim.kind === "existing" ? (claim.record.outcome ?? []) : [])).toEqual(
      Buffer.from(outcomeOf(1)),
    );
  });

  describe("through the interceptor", () => {
    let server: IdempotencyTestServer | undefined;
    afterEach(async () => {
      await server?.close();
      server = undefined;
    });

    it("answers DATA_LOSS STORE_CORRUPT and runs nothing", async () => {
      const store = await schema.openStore({ sweepIntervalMs: 0 });
      server = await startIdempotencyTestServer({ store });
      const payments = createClient(
        PaymentService,
        createTestTransport(server.baseUrl, { protocol: "connect", binary: true, gzip: false }),
      );
      const request = { requestId: crypto.randomUUID(), accountId: "acct_1", amountMinor: 500n, currency: "EUR" };
      const first = await payments.createPayment(request);
      // One flipped bit near the end of the stored outcome (without the
      // checksum, this replayed "EQR" for "EUR").
      const flip = `UPDATE ${schema.name}.${store.table} SET outcome = set_byte(outcome, length(outcome) - 2, get_byte(outcome, length(outcome) - 2) # 4)`;
      await schema.admin.query(flip);
      const error = await expectConnectError(payments.createPayment(request));
      expect(describeError(error)).toMatchObject({ code: Code.DataLoss, reason: ErrorReason.STORE_CORRUPT });
      expect(server.runs).toHaveLength(1);
      expect(server.events.some((event) => event.type === "store_error" && isStoreCorruptError(event.error))).toBe(
        true,
      );
      // With the bit flipped back, it replays again.
      await schema.admin.query(flip);
      expect(await payments.createPayment(request)).toEqual(first);
    });
  });
});

describe("scopes that differ only in lone surrogates, on PostgreSQL", () => {
  it("are three records, each replaying its own outcome and reading back its own scope", async () => {
    const store = await open();
    const scopes = ["team\ud800", "team\udbff", "team\ufffd"];
    const key = (scope: string): RecordKey => ({ scope, method, key: "order-1" });
    for (const [i, scope] of scopes.entries()) {
      await completed(store, key(scope), i);
    }
    for (const [i, scope] of scopes.entries()) {
      const claim = await store.claim(claimOf(key(scope), "retry"));
      expect(claim.kind).toBe("existing");
      if (claim.kind === "existing") {
        expect(claim.record.scope).toBe(scope);
        expect(claim.record.owner).toBe(`owner-${i}`);
        expect(Buffer.from(claim.record.outcome ?? [])).toEqual(Buffer.from(outcomeOf(i)));
      }
    }
    const rows = await schema.admin.query(`SELECT count(*)::int AS n FROM ${schema.name}.${store.table}`);
    expect(rows.rows).toEqual([{ n: 3 }]);
  });

  it("encodes every string to a distinct stored value, and back", () => {
    const values = [
      "team\ud800",
      "team\udbff",
      "team\ufffd",
      "\udc00team",
      "\ud83d\ude00",
      "\ude00\ud83d",
      "a\u0000b",
      "a\u0001b",
      "\u0001\u0003D800",
      "\u0001\u0002",
      "plain",
      "",
    ];
    const stored = values.map(toPostgresText);
    expect(new Set(stored).size).toBe(values.length);
    for (const [i, text] of stored.entries()) {
      expect(text).not.toMatch(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/);
      expect(text).not.toContain("\u0000");
      expect(fromPostgresText(text)).toBe(values[i]);
    }
    // Ordinary strings, well-formed pairs among them, are stored as they are.
    expect(toPostgresText("tenant-42")).toBe("tenant-42");
    expect(toPostgresText("\ud83d\ude00")).toBe("\ud83d\ude00");
  });
});
