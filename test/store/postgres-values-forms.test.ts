import { createHash, randomBytes } from "node:crypto";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import type { ClaimInput, ClaimResult, CompleteInput, RenewInput } from "../../src/store/idempotency-store.js";
import { createPostgresStore, type PostgresStore } from "../../src/store/postgres/postgres-store.js";
import { testConnectionString, useTestSchema } from "../support/postgres-database.js";
import { useTestDatabaseClock } from "../support/postgres-test-clock.js";

// Batches of 1 to 16 inputs go to PostgreSQL as a VALUES list of their size,
// larger ones as unnest arrays. Whatever the form, every caller of a batch
// must get exactly what the same operation one at a time gives it: the same
// store on another table, driven one operation after the other, is the
// reference.

const schema = useTestSchema("pgvalues");
const clock = useTestDatabaseClock("pgvaluesclock");

const method = "demo.v1.PaymentService/CreatePayment";
const fingerprint = "f".repeat(64);
const otherFingerprint = "e".repeat(64);

// Keys a hostile client may send: SQL and array-literal syntax, escapes,
// what `toPostgresText` maps, lone surrogates, emoji, a long key.
const strangeKeys = [
  "",
  "'",
  '"',
  "\\",
  "\\\\'",
  "$1",
  "$1::text",
  "'); DROP TABLE x; --",
  "{a,b}",
  '"{}"',
  ",",
  "NULL",
  "null",
  " ",
  "\t\n\r",
  "\u0000",
  "\u0001",
  "\u0001\u0002",
  "\u0001\u00030041",
  "\ud800",
  "\udfff",
  "a\ud83d",
  "\ude00b",
  "\ud83d\ude00",
  "😀👍🏽",
  "ｋｅｙ",
  "e\u0301",
  "\u00e9",
  "\ufffd",
  "x".repeat(2000),
];

function strangeKey(i: number): string {
  const base = strangeKeys[i % strangeKeys.length] as string;
  return i < strangeKeys.length ? base : `${base}#${i}`;
}

const categories = [
  "fresh",
  "completed",
  "expired",
  "expiredClaim",
  "dead",
  "graceHeld",
  "interrupted",
  "otherPayload",
  "held",
] as const;
type Category = (typeof categories)[number];

interface Planned {
  readonly i: number;
  readonly category: Category;
  readonly key: ClaimInput["key"];
}

function plan(size: number, offset: number): Planned[] {
  return Array.from({ length: size }, (_, i) => ({
    i,
    category: categories[(i + offset) % categories.length] as Category,
    key: { scope: `s${offset}`, method, key: strangeKey(i) },
  }));
}

const setupOwner = (p: Planned) => `setup-${p.i}`;
const claimOwner = (p: Planned) => `claim-${p.i}`;

/** Outcomes of many shapes, distinct per input: empty, every byte value, a view into a larger buffer, 1 MB. */
function outcomeFor(i: number, round: number): Uint8Array {
  if (i === 5) {
    const big = Buffer.alloc(1024 * 1024, round);
    big.writeUInt32BE(i, 0);
    return big;
  }
  switch (i % 4) {
    case 0:
      return new Uint8Array(0);
    case 1:
      return Uint8Array.from([...Array.from({ length: 256 }, (_, b) => b), i & 0xff, i >> 8, round]);
    case 2: {
      const bytes = Buffer.alloc(5);
      bytes.writeUInt32BE(i, 0);
      bytes[4] = round;
      return bytes;
    }
    default: {
      const backing = new Uint8Array(64).fill(0xee);
      backing.set([i & 0xff, i >> 8, round, 0, 0xff], 10);
      return backing.subarray(10, 15);
    }
  }
}

function completionOf(p: Planned, owner: string, attempt: number, round: number): CompleteInput {
  return {
    key: p.key,
    owner,
    attempt,
    outcome: outcomeFor(p.i, round),
    retentionMs: 600_000,
    ...(p.i % 3 === 0 ? { tombstoneMs: 60_000, outcomeCode: p.i % 17 } : {}),
  };
}

function hash(bytes: Uint8Array | undefined): string | undefined {
  return bytes === undefined ? undefined : createHash("sha256").update(bytes).digest("hex");
}

function claimView(result: ClaimResult) {
  const r = result.record;
  return {
    kind: result.kind,
    replaced: result.kind === "claimed" ? result.replaced : undefined,
    scope: r.scope,
    method: r.method,
    key: r.key,
    status: r.status,
    fingerprint: r.fingerprint,
    owner: r.owner,
    attempt: r.attempt,
    outcome: hash(r.outcome),
  };
}

type Settled<T> = { value: T } | { error: string };

async function settle<T>(promise: Promise<T>): Promise<Settled<T>> {
  try {
    return { value: await promise };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    return { error: typeof code === "string" ? code : String(error) };
  }
}

/** Every operation submitted in one turn: one batch (or a few over 1,000). */
function batched<I, T>(inputs: readonly I[], run: (input: I) => Promise<T>): Promise<Settled<T>[]> {
  return Promise.all(inputs.map((input) => settle(run(input))));
}

/** The reference: each operation alone, after the one before answered. */
async function oneByOne<I, T>(inputs: readonly I[], run: (input: I) => Promise<T>): Promise<Settled<T>[]> {
  const results: Settled<T>[] = [];
  for (const input of inputs) {
    results.push(await settle(run(input)));
  }
  return results;
}

function mapSettled<T, U>(results: readonly Settled<T>[], view: (value: T) => U): Settled<U>[] {
  return results.map((result) => ("value" in result ? { value: view(result.value) } : result));
}

let opened: { stores: PostgresStore[]; pool: pg.Pool } | undefined;

afterEach(async () => {
  if (opened !== undefined) {
    const { stores, pool } = opened;
    opened = undefined;
    for (const store of stores) {
      await store.close();
    }
    await pool.end();
    for (const store of stores) {
      await schema.admin.query(`DROP TABLE ${schema.name}.${store.table}_phases, ${schema.name}.${store.table}`);
    }
  }
});

/** Two stores on the moving test clock, each on its own table: `batch` to batch, `alone` to run one at a time. */
async function openPair(
  preparedStatements = true,
): Promise<{ batch: PostgresStore; alone: PostgresStore; pool: pg.Pool }> {
  await clock.reset();
  const pool = clock.pool();
  const open = () =>
    createPostgresStore({
      pool,
      schema: schema.name,
      table: schema.nextTable(),
      sweepIntervalMs: 0,
      preparedStatements,
    });
  const batch = await open();
  const alone = await open();
  opened = { stores: [batch, alone], pool };
  return { batch, alone, pool };
}

async function databaseNow(pool: pg.Pool): Promise<number> {
  const result = await pool.query<{ ms: string }>(
    "SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint AS ms",
  );
  return Number(result.rows[0]?.ms);
}

/** The rows of a store's table, without times that depend on when they were written. */
async function tableRows(store: PostgresStore) {
  const result = await schema.admin.query(
    `SELECT scope, method, key, status, fingerprint, owner, takeovers, interrupted,
       encode(sha256(outcome), 'hex') AS outcome, outcome_code, replay_until IS NULL AS no_replay_end,
       expires_at - updated_at AS expires_after_update
     FROM ${schema.name}.${store.table} ORDER BY scope, method, key`,
  );
  return result.rows;
}

/** Brings a store's keys into the states of their categories; the clock then moves 10 s. */
async function setUp(store: PostgresStore, planned: readonly Planned[]): Promise<void> {
  const setupClaim = (p: Planned): ClaimInput => ({
    key: p.key,
    fingerprint,
    owner: setupOwner(p),
    leaseMs: ["dead", "graceHeld", "otherPayload", "expiredClaim"].includes(p.category) ? 1000 : 60_000,
    graceMs: 0,
    expiresInMs: p.category === "expiredClaim" ? 2000 : 600_000,
  });
  const toClaim = planned.filter((p) => p.category !== "fresh" && p.category !== "held");
  const claimed = await Promise.all(toClaim.map((p) => store.claim(setupClaim(p))));
  expect(claimed.map((claim) => claim.kind)).toEqual(toClaim.map(() => "claimed"));
  const toComplete = planned.filter((p) => p.category === "completed" || p.category === "expired");
  const completed = await Promise.all(
    toComplete.map((p) =>
      store.complete({
        key: p.key,
        owner: setupOwner(p),
        attempt: 1,
        outcome: outcomeFor(p.i, 0),
        retentionMs: p.category === "expired" ? 1000 : 600_000,
      }),
    ),
  );
  expect(completed).toEqual(toComplete.map(() => true));
  for (const p of planned.filter((p) => p.category === "interrupted")) {
    expect(await store.interrupt({ key: p.key, owner: setupOwner(p), attempt: 1 })).toBe(true);
  }
}

async function setUpHeld(store: PostgresStore, planned: readonly Planned[]): Promise<void> {
  const held = planned.filter((p) => p.category === "held");
  const claimed = await Promise.all(
    held.map((p) =>
      store.claim({
        key: p.key,
        fingerprint,
        owner: setupOwner(p),
        leaseMs: 60_000,
        graceMs: 0,
        expiresInMs: 600_000,
      }),
    ),
  );
  expect(claimed.map((claim) => claim.kind)).toEqual(held.map(() => "claimed"));
}

function claimOf(p: Planned): ClaimInput {
  return {
    key: p.key,
    fingerprint: p.category === "otherPayload" ? otherFingerprint : fingerprint,
    owner: claimOwner(p),
    leaseMs: 60_000 + p.i,
    graceMs: p.category === "graceHeld" ? 60_000 : 0,
    expiresInMs: 600_000 + p.i,
  };
}

const leaseOf = (p: Planned) => 100_000 + p.i * 10_000;

function renewalOf(p: Planned): RenewInput {
  const as = (owner: string, attempt: number): RenewInput => ({ key: p.key, owner, attempt, leaseMs: leaseOf(p) });
  switch (p.category) {
    case "fresh":
      return p.i % 2 === 0 ? as(claimOwner(p), 1) : as("intruder", 1);
    case "completed":
    case "dead":
    case "interrupted":
    case "expiredClaim":
      // Completed, or taken over from this owner: refused.
      return as(setupOwner(p), 1);
    case "expired":
      return as(claimOwner(p), 1);
    case "graceHeld":
    case "otherPayload":
      return as(setupOwner(p), 1);
    case "held":
      return p.i % 2 === 0 ? as(setupOwner(p), 1) : as(setupOwner(p), 2);
  }
}

/** The first round of completions: right owners, wrong owners, stale attempts and retries. */
function firstCompletionOf(p: Planned): CompleteInput {
  switch (p.category) {
    case "fresh":
      return completionOf(p, p.i % 2 === 0 ? claimOwner(p) : "intruder", 1, 1);
    case "completed":
      // A completion retried after its answer was lost.
      return completionOf(p, setupOwner(p), 1, 1);
    case "expired":
      return completionOf(p, claimOwner(p), 1, 1);
    case "expiredClaim":
    case "dead":
      // The attempt that was replaced or taken over.
      return completionOf(p, setupOwner(p), 1, 1);
    case "graceHeld":
      return completionOf(p, setupOwner(p), 1, 1);
    case "interrupted":
      return completionOf(p, claimOwner(p), 2, 1);
    case "otherPayload":
      return completionOf(p, setupOwner(p), 2, 1);
    case "held":
      return completionOf(p, setupOwner(p), p.i % 2 === 0 ? 1 : 2, 1);
  }
}

/** The second round: every key's rightful owner, so some complete now and the others retry. */
function secondCompletionOf(p: Planned): CompleteInput {
  switch (p.category) {
    case "fresh":
    case "expired":
    case "expiredClaim":
      return completionOf(p, claimOwner(p), 1, 2);
    case "dead":
    case "interrupted":
      return completionOf(p, claimOwner(p), 2, 2);
    default:
      return completionOf(p, setupOwner(p), 1, 2);
  }
}

async function renewAndCheckLeases(
  store: PostgresStore,
  pool: pg.Pool,
  planned: readonly Planned[],
  run: typeof batched<RenewInput, boolean>,
): Promise<Settled<boolean>[]> {
  const before = await databaseNow(pool);
  const results = await run(planned.map(renewalOf), (input) => store.renew(input));
  const after = await databaseNow(pool);
  // Each renewed key got its own lease, not a neighbour's.
  for (const [index, p] of planned.entries()) {
    const result = results[index];
    if (result !== undefined && "value" in result && result.value) {
      const stored = (await store.get(p.key))?.leaseUntil;
      expect(stored, `lease of input ${p.i}`).toBeGreaterThanOrEqual(before + leaseOf(p));
      expect(stored, `lease of input ${p.i}`).toBeLessThanOrEqual(after + leaseOf(p));
    }
  }
  return results;
}

/** Runs the whole story on both stores and compares every answer and the tables. */
async function compareStory(size: number, offsets: readonly number[], preparedStatements = true): Promise<void> {
  const { batch, alone, pool } = await openPair(preparedStatements);
  const plans = offsets.map((offset) => plan(size, offset));
  for (const planned of plans) {
    await setUp(batch, planned);
    await setUp(alone, planned);
  }
  await clock.travel(10_000);
  for (const planned of plans) {
    await setUpHeld(batch, planned);
    await setUpHeld(alone, planned);
  }
  for (const planned of plans) {
    const claimsBatched = mapSettled(await batched(planned.map(claimOf), (input) => batch.claim(input)), claimView);
    const claimsAlone = mapSettled(await oneByOne(planned.map(claimOf), (input) => alone.claim(input)), claimView);
    expect(claimsBatched).toEqual(claimsAlone);
    // Each claimed record is its own caller's.
    for (const [index, p] of planned.entries()) {
      const claim = claimsBatched[index];
      expect(claim && "value" in claim ? claim.value.key : undefined).toBe(p.key.key);
    }

    const renewedBatched = await renewAndCheckLeases(batch, pool, planned, batched);
    const renewedAlone = await renewAndCheckLeases(alone, pool, planned, oneByOne);
    expect(renewedBatched).toEqual(renewedAlone);

    for (const round of [firstCompletionOf, secondCompletionOf]) {
      const completedBatched = await batched(planned.map(round), (input) => batch.complete(input));
      const completedAlone = await oneByOne(planned.map(round), (input) => alone.complete(input));
      expect(completedBatched).toEqual(completedAlone);
    }
  }
  expect(await tableRows(batch)).toEqual(await tableRows(alone));
  // Every record reads back intact, with the outcome its own completion stored.
  for (const planned of plans) {
    const records = await Promise.all(planned.map((p) => batch.get(p.key)));
    const reference = await Promise.all(planned.map((p) => alone.get(p.key)));
    expect(records.map((r) => r && hash(r.outcome))).toEqual(reference.map((r) => r && hash(r.outcome)));
    expect(records.map((r) => r?.key)).toEqual(planned.map((p) => p.key.key));
  }
}

describe("PostgreSQL VALUES and unnest forms against one operation at a time", () => {
  it.each([
    [1, [0, 1, 2, 3, 4, 5, 6, 7, 8]],
    [2, [0, 1, 2, 3, 4, 5, 6, 7, 8]],
    [15, [0, 4]],
    [16, [0, 7]],
    [17, [0, 3]],
    [40, [0]],
  ] as const)(
    "gives a batch of %i claims, renewals and completions the answers of each alone",
    async (size, offsets) => {
      await compareStory(size, offsets);
    },
    60_000,
  );

  it.each([16, 17])(
    "gives a batch of %i the answers of each alone with preparedStatements: false",
    async (size) => {
      await compareStory(size, [0, 5], false);
    },
    60_000,
  );

  it("defers a key's second operation of one turn to the next batch, across the VALUES and unnest forms", async () => {
    const { batch, alone } = await openPair();
    // 30 operations on 12 keys: batches of 12, 12 and 6 inputs.
    const keyOf = (n: number) => ({ scope: "dup", method, key: strangeKey(n % 12) });
    const claims = Array.from(
      { length: 30 },
      (_, n): ClaimInput => ({
        key: keyOf(n),
        fingerprint: n % 5 === 0 ? otherFingerprint : fingerprint,
        owner: `dup-${n}`,
        leaseMs: 60_000,
        graceMs: 0,
        expiresInMs: 600_000,
      }),
    );
    const claimsBatched = mapSettled(await batched(claims, (input) => batch.claim(input)), claimView);
    const claimsAlone = mapSettled(await oneByOne(claims, (input) => alone.claim(input)), claimView);
    expect(claimsBatched).toEqual(claimsAlone);
    // Every claimant completes; only the first of each key holds it, and a retry of it succeeds too.
    const completions = [...claims, ...claims.slice(0, 12)].map(
      (claim, n): CompleteInput => ({
        key: claim.key,
        owner: claim.owner,
        attempt: 1,
        outcome: outcomeFor(n, 1),
        retentionMs: 600_000,
      }),
    );
    const completedBatched = await batched(completions, (input) => batch.complete(input));
    const completedAlone = await oneByOne(completions, (input) => alone.complete(input));
    expect(completedBatched).toEqual(completedAlone);
    expect(completedBatched.filter((result) => "value" in result && result.value)).toHaveLength(24);
    expect(await tableRows(batch)).toEqual(await tableRows(alone));
  });

  it("gives a burst of 1,003 (a statement of 1,000 arrays, one of 3 values) the answers of each alone", async () => {
    await compareStory(1003, [0]);
  }, 120_000);
});

describe("PostgreSQL batches with one input PostgreSQL refuses", () => {
  // A key too long for the primary key's btree (random, so it does not compress).
  const tooLongKey = () => randomBytes(4000).toString("base64");

  it.each([2, 16, 17, 40])(
    "fails only the claim, renewal or completion at fault in a batch of %i, and answers the others as alone",
    async (size) => {
      const { batch, alone } = await openPair();
      const planned = plan(size, 0).map((p) => ({ ...p, category: "fresh" as Category }));
      const badAt = Math.floor(size / 2);
      const longKey = tooLongKey();
      const claims = planned.map((p, index) => {
        const input = claimOf(p);
        if (index === badAt) return { ...input, key: { ...input.key, key: longKey } };
        if (index === badAt - 1) return { ...input, leaseMs: 2 ** 63 - 1024 };
        // PostgreSQL text cannot hold U+0000, and owners are not escaped: "invalid byte sequence".
        if (index === badAt + 2) return { ...input, owner: "owner\u0000" };
        return input;
      });
      const claimsBatched = mapSettled(await batched(claims, (input) => batch.claim(input)), claimView);
      const claimsAlone = mapSettled(await oneByOne(claims, (input) => alone.claim(input)), claimView);
      expect(claimsBatched).toEqual(claimsAlone);
      expect(claimsBatched[badAt]).toEqual({ error: "54000" });
      expect(claimsBatched[badAt - 1]).toEqual({ error: "22003" });
      if (badAt + 2 < size) expect(claimsBatched[badAt + 2]).toEqual({ error: "22021" });
      expect(claimsBatched.filter((claim) => "value" in claim)).toHaveLength(size - Math.min(3, size));

      const renewals = planned.map(
        (p, index): RenewInput => ({
          key: claims[index]?.key ?? p.key,
          owner: claimOwner(p),
          attempt: 1,
          leaseMs: index === badAt ? 2 ** 63 - 1024 : leaseOf(p),
        }),
      );
      const renewedBatched = await batched(renewals, (input) => batch.renew(input));
      const renewedAlone = await oneByOne(renewals, (input) => alone.renew(input));
      expect(renewedBatched).toEqual(renewedAlone);

      const completions = planned.map(
        (p, index): CompleteInput => ({
          ...completionOf(p, claimOwner(p), 1, 1),
          key: claims[index]?.key ?? p.key,
          ...(index === badAt + 1 ? { tombstoneMs: 1000, outcomeCode: 2 ** 40 } : {}),
          ...(index === 0 ? { retentionMs: 2 ** 63 - 1024 } : {}),
        }),
      );
      const completedBatched = await batched(completions, (input) => batch.complete(input));
      const completedAlone = await oneByOne(completions, (input) => alone.complete(input));
      expect(completedBatched).toEqual(completedAlone);
      if (size > 2) {
        expect(completedBatched[0]).toEqual({ error: "22003" });
        expect(completedBatched[badAt + 1]).toEqual({ error: "22003" });
      }
      expect(await tableRows(batch)).toEqual(await tableRows(alone));
    },
    60_000,
  );
});

describe("PostgreSQL statements of every batch size", () => {
  it("keeps at most 17 statements per kind on a connection, and plans the VALUES ones once", async () => {
    const pool = new pg.Pool({ connectionString: testConnectionString, max: 1 });
    const store = await createPostgresStore({
      pool,
      schema: schema.name,
      table: schema.nextTable(),
      sweepIntervalMs: 0,
    });
    const table = store.table;
    try {
      // A table of settled size and statistics: statistics that move under a
      // statement (autoanalyze of a growing table) make PostgreSQL weigh its
      // generic plan against custom plans of another table.
      await schema.admin.query(`ALTER TABLE ${schema.name}.${table} SET (autovacuum_enabled = false)`);
      await schema.admin.query(
        `INSERT INTO ${schema.name}.${table} (scope, method, key, status, fingerprint, owner, created_at, updated_at, lease_until, expires_at, takeovers, interrupted)
         SELECT 'filler', 'm', g::text, 'in_progress', 'f', 'o', 0, 0, 0, 1e12, 0, false FROM generate_series(1, 50000) AS g`,
      );
      await schema.admin.query(`ANALYZE ${schema.name}.${table}`);
      // Every size from 1 to 40, seven times, in a shuffled order.
      const sizes = Array.from({ length: 40 * 7 }, (_, n) => (n % 40) + 1);
      let seed = 7;
      for (let n = sizes.length - 1; n > 0; n--) {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        const m = seed % (n + 1);
        [sizes[n], sizes[m]] = [sizes[m] as number, sizes[n] as number];
      }
      for (const [round, size] of sizes.entries()) {
        const inputs = Array.from(
          { length: size },
          (_, i): ClaimInput => ({
            key: { scope: "plans", method, key: `${round}-${i}` },
            fingerprint,
            owner: `o-${round}-${i}`,
            leaseMs: 60_000,
            graceMs: 0,
            expiresInMs: 600_000,
          }),
        );
        const claims = await Promise.all(inputs.map((input) => store.claim(input)));
        expect(claims.map((claim) => claim.kind)).toEqual(inputs.map(() => "claimed"));
        const renewed = await Promise.all(
          inputs.map((input) => store.renew({ key: input.key, owner: input.owner, attempt: 1, leaseMs: 60_000 })),
        );
        expect(renewed).toEqual(inputs.map(() => true));
        const completed = await Promise.all(
          inputs.map((input) =>
            store.complete({
              key: input.key,
              owner: input.owner,
              attempt: 1,
              outcome: new Uint8Array([size]),
              retentionMs: 600_000,
            }),
          ),
        );
        expect(completed).toEqual(inputs.map(() => true));
      }
      const plans = await pool.query<{ statement: string; generic_plans: string; custom_plans: string }>(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements",
      );
      const kinds = new Map<string, { size: number | "arrays"; generic: number; custom: number }[]>();
      for (const row of plans.rows) {
        if (!row.statement.includes(table)) continue;
        const kind = row.statement.includes("\nINSERT INTO")
          ? "claim"
          : row.statement.includes("\ndone AS (")
            ? "complete"
            : row.statement.includes("\nUPDATE")
              ? "renew"
              : "other";
        const placeholders = [...row.statement.matchAll(/\$(\d+)/g)].map((match) => Number(match[1]));
        const perInput = { claim: 8, complete: 9, renew: 6, other: 1 }[kind] as number;
        const size = row.statement.includes("unnest(") ? "arrays" : Math.max(0, ...placeholders) / perInput;
        kinds.set(kind, [
          ...(kinds.get(kind) ?? []),
          { size, generic: Number(row.generic_plans), custom: Number(row.custom_plans) },
        ]);
      }
      for (const kind of ["claim", "renew", "complete"]) {
        const statements = kinds.get(kind) ?? [];
        expect(
          statements.map((s) => s.size).sort((a, b) => String(a).localeCompare(String(b), "en", { numeric: true })),
          kind,
        ).toEqual([...Array.from({ length: 16 }, (_, i) => i + 1), "arrays"]);
        for (const statement of statements) {
          if (statement.size === "arrays") {
            // Each of the 24 sizes above 16 ran seven times, all in one statement.
            expect(statement.generic + statement.custom, kind).toBe(24 * 7);
          } else {
            expect(statement, `${kind} of ${statement.size}`).toEqual({ size: statement.size, generic: 2, custom: 5 });
          }
        }
      }
    } finally {
      await store.close();
      await pool.end();
      await schema.admin.query(`DROP TABLE ${schema.name}.${table}_phases, ${schema.name}.${table}`);
    }
  }, 120_000);
});
