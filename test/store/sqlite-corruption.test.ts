import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, createClient } from "@connectrpc/connect";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { type IdempotencyEvent, isStoreCorruptError } from "../../src/index.js";
import { ErrorReason } from "../../src/client/index.js";
import type { RecordKey } from "../../src/store/idempotency-store.js";
import { createSqliteStore, type SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { createSeededRandom } from "../../src/testing/seeded-random.js";
import { describeError, expectConnectError } from "../support/connect-assertions.js";
import { type IdempotencyTestServer, startIdempotencyTestServer } from "../support/idempotency-test-server.js";
import { createGate } from "../support/call-gates.js";
import { createTestTransport } from "../support/test-transports.js";

let dir: string;
let files = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "sqlite-corruption-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});
const nextFile = () => join(dir, `store-${++files}.db`);

const method = "shop.v1.Orders/Place";
const keyOf = (i: number): RecordKey => ({ scope: "acme", method, key: `order-${i}` });
const outcomeOf = (i: number) => new TextEncoder().encode(`response of order-${i} `.repeat(8));
const day = 86_400_000;
const claimOf = (i: number, owner: string) => ({
  key: keyOf(i),
  fingerprint: `fp-${i}`,
  owner,
  leaseMs: 30_000,
  graceMs: 1_000,
  expiresInMs: day,
});

/** Fills a closed store file with `n` completed keys. */
async function fill(path: string, n: number): Promise<void> {
  const store = createSqliteStore({ path, sweepIntervalMs: 0 });
  for (let start = 0; start < n; start += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, n - start) }, async (_, j) => {
        const i = start + j;
        expect((await store.claim(claimOf(i, "first"))).kind).toBe("claimed");
        expect(
          await store.complete({ key: keyOf(i), owner: "first", attempt: 1, outcome: outcomeOf(i), retentionMs: day }),
        ).toBe(true);
      }),
    );
  }
  await store.close();
}

/** Writes `bytes` seeded random bytes at `offset` of each page in [from, to). */
function rot(path: string, pages: [from: number, to: number], offset: number, bytes: number, seed: number): void {
  const random = createSeededRandom(seed);
  const fd = openSync(path, "r+");
  try {
    for (let page = pages[0]; page < pages[1]; page++) {
      const noise = Buffer.from(Array.from({ length: bytes }, () => Math.floor(random() * 256)));
      writeSync(fd, noise, 0, bytes, page * 4096 + offset);
    }
  } finally {
    closeSync(fd);
  }
}

describe("bit rot in a SQLite file", () => {
  it("never replays an altered outcome: damaged records fail with a StoreCorruptError, and the quick check refuses the file at open", async () => {
    const n = 2000;
    const path = nextFile();
    await fill(path, n);
    // 16 bytes inside the cell area of 20 pages, as the issue measured.
    rot(path, [60, 80], 2048, 16, 14);

    // The default check at open refuses the file.
    expect(() => createSqliteStore({ path, sweepIntervalMs: 0 })).toThrow(
      /SQLite file .* is damaged \(PRAGMA quick_check: .*\); the store refuses to open it/,
    );

    // Opened anyway, every key is retried: what does each get?
    const store = createSqliteStore({ path, sweepIntervalMs: 0, integrityCheck: "off" });
    const tally = { intact: 0, altered: 0, corrupt: 0, otherPayload: 0, ranAgain: 0, otherError: 0 };
    const ranAgain: number[] = [];
    try {
      for (let i = 0; i < n; i++) {
        try {
          const claim = await store.claim(claimOf(i, "retry"));
          if (claim.kind === "claimed") {
            tally.ranAgain++;
            ranAgain.push(i);
          } else if (claim.record.fingerprint !== `fp-${i}`) {
            tally.otherPayload++;
          } else if (Buffer.compare(Buffer.from(claim.record.outcome ?? []), Buffer.from(outcomeOf(i))) === 0) {
            tally.intact++;
          } else {
            tally.altered++;
          }
        } catch (error) {
          if (isStoreCorruptError(error)) {
            tally.corrupt++;
          } else {
            tally.otherError++;
          }
        }
      }
    } finally {
      await store.close();
    }
    console.log(`bit rot, ${n} completed keys, 16 bytes in each of 20 pages:`, tally);
    expect(tally.altered).toBe(0);
    expect(tally.otherPayload).toBe(0);
    expect(tally.otherError).toBe(0);
    expect(tally.corrupt).toBeGreaterThan(0);
    expect(tally.intact + tally.corrupt + tally.ranAgain).toBe(n);
    // What ran again is the limit the check at open guards against: the
    // primary key's index no longer finds the record, which is still in the
    // table (a scan without the index finds it).
    const raw = new Database(path, { readonly: true });
    try {
      const unindexed = raw.prepare(
        "SELECT count(*) FROM connect_idempotency_records NOT INDEXED WHERE key = ? AND owner = 'first'",
      );
      for (const i of ranAgain) {
        expect(unindexed.pluck().get(`order-${i}`)).toBe(1);
      }
    } finally {
      raw.close();
    }
  });

  it("refuses a file whose page headers are damaged when the check is on, and opens it when it is off", async () => {
    const path = nextFile();
    await fill(path, 1000);
    // The b-tree page header sits at the start of every page but the first.
    rot(path, [10, 14], 0, 12, 7);
    for (const integrityCheck of ["quick", "full"] as const) {
      expect(() => createSqliteStore({ path, sweepIntervalMs: 0, integrityCheck })).toThrow(
        /is damaged \(PRAGMA (quick_check|integrity_check): .*Restore the file from a backup/,
      );
    }
    const store = createSqliteStore({ path, sweepIntervalMs: 0, integrityCheck: "off" });
    await store.close();
  });

  it("refuses an integrityCheck it does not know at construction", () => {
    expect(() => createSqliteStore({ path: ":memory:", integrityCheck: "yes" as "quick" })).toThrow(
      'integrityCheck must be "quick", "full" or "off", got "yes"',
    );
  });
});

describe("a record whose checksum does not match", () => {
  let store: SqliteStore | undefined;
  afterEach(async () => {
    await store?.close();
    store = undefined;
  });

  async function completedStore(path: string) {
    const opened = createSqliteStore({ path, sweepIntervalMs: 0 });
    store = opened;
    await opened.claim(claimOf(1, "first"));
    await opened.complete({ key: keyOf(1), owner: "first", attempt: 1, outcome: outcomeOf(1), retentionMs: day });
    const raw = new Database(path);
    return { store: opened, raw };
  }

  it("is neither replayed nor taken for absent, by claim and get", async () => {
    const path = nextFile();
    const { store, raw } = await completedStore(path);
    raw.prepare("UPDATE connect_idempotency_records SET outcome = ? WHERE key = 'order-1'").run(Buffer.from("altered"));
    raw.close();
    await expect(store.claim(claimOf(1, "retry"))).rejects.toSatisfy(isStoreCorruptError);
    await expect(store.get(keyOf(1))).rejects.toThrow(
      /order-1.* is damaged \(its checksum does not match what it holds\)/,
    );
  });

  it("is not replaced when its expiry is damaged: the request does not run again", async () => {
    const path = nextFile();
    const { store, raw } = await completedStore(path);
    raw.prepare("UPDATE connect_idempotency_records SET expires_at = 0 WHERE key = 'order-1'").run();
    raw.close();
    await expect(store.claim(claimOf(1, "retry"))).rejects.toSatisfy(isStoreCorruptError);
    // Still the first execution's record.
    const row = new Database(path, { readonly: true }).prepare("SELECT owner FROM connect_idempotency_records").get();
    expect(row).toEqual({ owner: "first" });
  });

  it.each([
    ["its replay end moved back (a replayed record would become a tombstone)", "replay_until = replay_until - 1000"],
    ["its replay end cleared (a tombstone would replay, then its empty body)", "replay_until = NULL"],
    ["its outcome code changed", "outcome_code = 13"],
    ["its body dropped without a new checksum", "outcome = NULL"],
  ])("with a tombstone period, is refused when %s", async (_, damage) => {
    const path = nextFile();
    const opened = createSqliteStore({ path, sweepIntervalMs: 0 });
    store = opened;
    await opened.claim(claimOf(1, "first"));
    await opened.complete({
      key: keyOf(1),
      owner: "first",
      attempt: 1,
      outcome: outcomeOf(1),
      retentionMs: day,
      tombstoneMs: 30 * day,
    });
    expect((await opened.get(keyOf(1)))?.replayUntil).toBeDefined();
    const raw = new Database(path);
    raw.prepare(`UPDATE connect_idempotency_records SET ${damage} WHERE key = 'order-1'`).run();
    raw.close();
    await expect(opened.claim(claimOf(1, "retry"))).rejects.toSatisfy(isStoreCorruptError);
    await expect(opened.get(keyOf(1))).rejects.toSatisfy(isStoreCorruptError);
    // The sweeper's first stage leaves a damaged row alone rather than vouch for it.
    await opened.sweep({ limit: 10 });
    await expect(opened.get(keyOf(1))).rejects.toSatisfy(isStoreCorruptError);
  });

  it("stays readable when it was written before checksums (NULL): no false alarm", async () => {
    const path = nextFile();
    const { store, raw } = await completedStore(path);
    raw.prepare("UPDATE connect_idempotency_records SET checksum = NULL").run();
    raw.close();
    const claim = await store.claim(claimOf(1, "retry"));
    expect(claim.kind).toBe("existing");
    expect(Buffer.from(claim.kind === "existing" ? (claim.record.outcome ?? []) : [])).toEqual(
      Buffer.from(outcomeOf(1)),
    );
  });
});

describe("the interceptor on a damaged SQLite record", () => {
  let server: IdempotencyTestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it("answers DATA_LOSS STORE_CORRUPT, runs nothing, and reports the store's error in an event", async () => {
    const path = nextFile();
    server = await startIdempotencyTestServer({ store: createSqliteStore({ path, sweepIntervalMs: 0 }) });
    const payments = createClient(
      PaymentService,
      createTestTransport(server.baseUrl, { protocol: "connect", binary: true, gzip: false }),
    );
    const request = { requestId: crypto.randomUUID(), accountId: "acct_1", amountMinor: 500n, currency: "EUR" };
    await payments.createPayment(request);
    const raw = new Database(path);
    // A flipped byte inside the stored outcome.
    const row = raw.prepare<[], { outcome: Buffer }>("SELECT outcome FROM connect_idempotency_records").get();
    const outcome = Buffer.from(row?.outcome ?? []);
    outcome[outcome.length - 2] = (outcome[outcome.length - 2] ?? 0) ^ 0x04;
    raw.prepare("UPDATE connect_idempotency_records SET outcome = ?").run(outcome);
    raw.close();

    const error = await expectConnectError(payments.createPayment(request));
    expect(describeError(error)).toMatchObject({ code: Code.DataLoss, reason: ErrorReason.STORE_CORRUPT });
    expect(error.rawMessage).toContain("damaged");
    expect(server.runs).toHaveLength(1);
    const storeErrors = server.events.filter((event: IdempotencyEvent) => event.type === "store_error");
    expect(storeErrors).toHaveLength(1);
    expect(storeErrors[0]).toMatchObject({ operation: "claim", willRetry: false });
    expect(isStoreCorruptError(storeErrors[0]?.error)).toBe(true);
    expect(server.events.some((event) => event.type === "replayed")).toBe(false);
  });
});

describe("a duplicate polling a record that gets damaged meanwhile", () => {
  it("fails with DATA_LOSS STORE_CORRUPT instead of taking the record for absent and running again", async () => {
    const path = nextFile();
    const release = createGate();
    const running = createGate();
    const owner = await startIdempotencyTestServer({
      store: createSqliteStore({ path, sweepIntervalMs: 0 }),
      payments: {
        async createPayment(req, ctx) {
          owner.record("createPayment", req.requestId, undefined);
          running.open();
          await release.opened;
          void ctx;
          return { payment: { paymentId: "pay_owner" } };
        },
      },
    });
    // A second server on the same file: it sees the owner's claim only in the store, and polls it.
    const claimed = createGate();
    const plain = createSqliteStore({ path, sweepIntervalMs: 0 });
    const duplicate = await startIdempotencyTestServer({
      store: {
        ...plain,
        claim: async (input) => {
          const result = await plain.claim(input);
          claimed.open();
          return result;
        },
      },
    });
    try {
      const client = (url: string) =>
        createClient(PaymentService, createTestTransport(url, { protocol: "connect", binary: true, gzip: false }));
      const request = { requestId: crypto.randomUUID(), accountId: "acct_1", amountMinor: 500n, currency: "EUR" };
      const first = client(owner.baseUrl).createPayment(request);
      await running.opened;
      const second = expectConnectError(client(duplicate.baseUrl).createPayment(request));
      await claimed.opened;
      const raw = new Database(path);
      raw.prepare("UPDATE connect_idempotency_records SET checksum = X'00'").run();
      raw.close();
      const error = await second;
      expect(describeError(error)).toMatchObject({ code: Code.DataLoss, reason: ErrorReason.STORE_CORRUPT });
      expect(duplicate.runs).toHaveLength(0);
      const storeError = duplicate.events.find((event) => event.type === "store_error");
      expect(storeError).toMatchObject({ operation: "get", willRetry: false });
      expect(isStoreCorruptError(storeError?.error)).toBe(true);
      release.open();
      await first;
      expect(owner.runs).toHaveLength(1);
    } finally {
      release.open();
      await duplicate.close();
      await owner.close();
    }
  });
});

describe("scopes that differ only in lone surrogates, on SQLite", () => {
  it("stay three records, each replaying its own outcome", async () => {
    const store = createSqliteStore({ path: nextFile(), sweepIntervalMs: 0 });
    try {
      const scopes = ["team\ud800", "team\udbff", "team\ufffd"];
      const key = (scope: string): RecordKey => ({ scope, method, key: "order-1" });
      for (const [i, scope] of scopes.entries()) {
        const claim = await store.claim({ ...claimOf(0, `owner-${i}`), key: key(scope) });
        expect(claim.kind).toBe("claimed");
        await store.complete({
          key: key(scope),
          owner: `owner-${i}`,
          attempt: 1,
          outcome: outcomeOf(i),
          retentionMs: day,
        });
      }
      for (const [i, scope] of scopes.entries()) {
        const claim = await store.claim({ ...claimOf(0, "retry"), key: key(scope) });
        expect(claim.kind).toBe("existing");
        if (claim.kind === "existing") {
          // SQLite keeps a lone surrogate as its 3 bytes, and hands them back
          // as 3 U+FFFD: the record is its own, though its scope reads back so.
          expect(claim.record.scope).toBe(scope.replace(/[\ud800-\udfff]/g, "\ufffd\ufffd\ufffd"));
          expect(claim.record.owner).toBe(`owner-${i}`);
          expect(Buffer.from(claim.record.outcome ?? [])).toEqual(Buffer.from(outcomeOf(i)));
        }
      }
      expect(store.database.prepare("SELECT count(*) FROM connect_idempotency_records").pluck().get()).toBe(3);
    } finally {
      await store.close();
    }
  });
});
