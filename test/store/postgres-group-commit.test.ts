import { randomBytes } from "node:crypto";
import type pg from "pg";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ClaimInput, ClaimResult, CompleteInput } from "../../src/store/idempotency-store.js";
import { createPostgresStore, type PostgresStore } from "../../src/store/postgres/postgres-store.js";
import { useTestSchema } from "../support/postgres-database.js";
import { useTestDatabaseClock } from "../support/postgres-test-clock.js";

// Claims, completions and renewals made in one turn of the event loop go to
// PostgreSQL as one statement per kind; each caller must still get exactly
// what the same operation alone would have given it.

const schema = useTestSchema("pggroup");
const clock = useTestDatabaseClock("pggroupclock");

const method = "demo.v1.PaymentService/CreatePayment";
const fingerprint = "f".repeat(64);

function claimInput(key: string, overrides: Partial<ClaimInput> = {}): ClaimInput {
  return {
    key: { scope: "tenant", method, key },
    fingerprint,
    owner: randomBytes(8).toString("hex"),
    leaseMs: 60_000,
    graceMs: 0,
    expiresInMs: 600_000,
    ...overrides,
  };
}

function completion(input: ClaimInput, attempt = 1, overrides: Partial<CompleteInput> = {}): CompleteInput {
  return {
    key: input.key,
    owner: input.owner,
    attempt,
    outcome: new Uint8Array([1, 2, 3]),
    retentionMs: 600_000,
    ...overrides,
  };
}

let opened: { store: PostgresStore; pool: pg.Pool } | undefined;

/** What a statement the store sent does: `claim`, `complete`, `renew`, or its first word. */
function statementKind(text: string): string {
  if (text.includes("\nINSERT INTO")) return "claim";
  if (text.includes("\ndone AS (")) return "complete";
  if (text.includes("\nUPDATE")) return "renew";
  return text.split(/\s/)[0] ?? "";
}

/** A store on the moving test clock, and the kinds of the statements it sent since the last call. */
async function openStore(): Promise<{ store: PostgresStore; statements: () => string[] }> {
  await clock.reset();
  const pool = clock.pool();
  const store = await createPostgresStore({ pool, schema: schema.name, table: schema.nextTable(), sweepIntervalMs: 0 });
  opened = { store, pool };
  const query = vi.spyOn(pool, "query");
  return {
    store,
    statements() {
      const kinds = query.mock.calls.map(([config]) =>
        statementKind(typeof config === "string" ? config : (config as pg.QueryConfig).text),
      );
      query.mockClear();
      return kinds;
    },
  };
}

afterEach(async () => {
  if (opened !== undefined) {
    const { store, pool } = opened;
    opened = undefined;
    await store.close();
    await pool.end();
    await schema.admin.query(`DROP TABLE ${schema.name}.${store.table}_phases, ${schema.name}.${store.table}`);
  }
});

describe("PostgreSQL group commit", () => {
  it("sends the claims and completions of one turn as one statement each", async () => {
    const { store, statements } = await openStore();
    const inputs = Array.from({ length: 20 }, (_, i) => claimInput(`batch-${i}`));
    const claims = await Promise.all(inputs.map((input) => store.claim(input)));
    expect(claims.map((claim) => claim.kind)).toEqual(inputs.map(() => "claimed"));
    expect(claims.map((claim) => claim.record.owner)).toEqual(inputs.map((input) => input.owner));
    expect(claims.map((claim) => claim.record.key)).toEqual(inputs.map((input) => input.key.key));
    expect(statements()).toEqual(["claim"]);
    const completed = await Promise.all(
      inputs.map((input, i) => store.complete(completion(input, 1, { outcome: new Uint8Array([i]) }))),
    );
    expect(completed).toEqual(inputs.map(() => true));
    expect(statements()).toEqual(["complete"]);
    // Each completion stored its own outcome.
    for (const [i, input] of inputs.entries()) {
      expect((await store.get(input.key))?.outcome).toEqual(new Uint8Array([i]));
    }
  });

  it("sends a burst of more than 1,000 claims as several statements over disjoint keys", async () => {
    const { store, statements } = await openStore();
    const inputs = Array.from({ length: 1500 }, (_, i) => claimInput(`burst-${i}`));
    const claims = await Promise.all(inputs.map((input) => store.claim(input)));
    expect(claims.every((claim) => claim.kind === "claimed")).toBe(true);
    expect(statements()).toEqual(["claim", "claim"]);
  });

  it("runs two claims of the same key in one turn as if one after the other: one wins, the other finds it in progress", async () => {
    const { store, statements } = await openStore();
    const first = claimInput("same");
    const second = claimInput("same");
    const other = claimInput("neighbour");
    const [a, b, c] = await Promise.all([store.claim(first), store.claim(second), store.claim(other)]);
    expect(a).toMatchObject({ kind: "claimed", replaced: "none", record: { owner: first.owner, attempt: 1 } });
    expect(b).toMatchObject({ kind: "existing", record: { status: "in_progress", owner: first.owner, attempt: 1 } });
    expect(c).toMatchObject({ kind: "claimed", record: { owner: other.owner } });
    // The second claim of the key went in a statement of its own, after the first answered, then read the record.
    expect(statements()).toEqual(["claim", "claim", "SELECT"]);
    // Two completions of one key in one turn: the retried one reports success too, as it would alone.
    expect(await Promise.all([store.complete(completion(first)), store.complete(completion(first))])).toEqual([
      true,
      true,
    ]);
  });

  it("gives every claim of one batch its own outcome: new, expired, taken over, interrupted, held, replayed", async () => {
    const { store, statements } = await openStore();
    const completed = claimInput("completed");
    const expired = claimInput("expired");
    const dead = claimInput("dead", { leaseMs: 1000 });
    const interrupted = claimInput("interrupted");
    const otherPayload = claimInput("other-payload", { leaseMs: 1000 });
    for (const input of [completed, expired, dead, interrupted, otherPayload]) {
      expect((await store.claim(input)).kind).toBe("claimed");
    }
    expect(await store.complete(completion(completed))).toBe(true);
    expect(await store.complete(completion(expired, 1, { retentionMs: 1000 }))).toBe(true);
    expect(await store.interrupt({ key: interrupted.key, owner: interrupted.owner, attempt: 1 })).toBe(true);
    await clock.travel(10_000);
    const held = claimInput("held");
    expect((await store.claim(held)).kind).toBe("claimed");
    statements();

    const batch = {
      fresh: claimInput("fresh"),
      completed: claimInput("completed"),
      expired: claimInput("expired"),
      dead: claimInput("dead"),
      interrupted: claimInput("interrupted"),
      otherPayload: claimInput("other-payload", { fingerprint: "e".repeat(64) }),
      held: claimInput("held"),
    };
    const entries = Object.entries(batch);
    const results = Object.fromEntries(
      await Promise.all(entries.map(async ([name, input]) => [name, await store.claim(input)] as const)),
    ) as Record<keyof typeof batch, ClaimResult>;
    expect(results.fresh).toMatchObject({
      kind: "claimed",
      replaced: "none",
      record: { owner: batch.fresh.owner, attempt: 1 },
    });
    expect(results.completed).toMatchObject({
      kind: "existing",
      record: { status: "completed", owner: completed.owner },
    });
    expect(results.expired).toMatchObject({
      kind: "claimed",
      replaced: "expired",
      record: { owner: batch.expired.owner, attempt: 1 },
    });
    expect(results.dead).toMatchObject({
      kind: "claimed",
      replaced: "takeover",
      record: { owner: batch.dead.owner, attempt: 2 },
    });
    expect(results.interrupted).toMatchObject({
      kind: "claimed",
      replaced: "takeover",
      record: { owner: batch.interrupted.owner, attempt: 2, status: "in_progress" },
    });
    expect(results.otherPayload).toMatchObject({
      kind: "existing",
      record: { owner: otherPayload.owner, fingerprint },
    });
    expect(results.held).toMatchObject({ kind: "existing", record: { status: "in_progress", owner: held.owner } });
    // One claim statement for all seven, then a read for each of the three it did not claim.
    expect(statements()).toEqual(["claim", "SELECT", "SELECT", "SELECT"]);
  });

  it("takes over by each claim's own grace period in one batch", async () => {
    const { store, statements } = await openStore();
    const patient = claimInput("patient", { leaseMs: 1000 });
    const eager = claimInput("eager", { leaseMs: 1000 });
    await Promise.all([store.claim(patient), store.claim(eager)]);
    await clock.travel(5000);
    statements();
    const [waits, takes] = await Promise.all([
      store.claim(claimInput("patient", { graceMs: 60_000 })),
      store.claim(claimInput("eager", { graceMs: 1000 })),
    ]);
    expect(waits).toMatchObject({ kind: "existing", record: { owner: patient.owner } });
    expect(takes).toMatchObject({ kind: "claimed", replaced: "takeover", record: { attempt: 2 } });
    expect(statements()).toEqual(["claim", "SELECT"]);
  });

  it("fences every completion and renewal of one batch by its own owner and attempt", async () => {
    const { store, statements } = await openStore();
    const takenOver = claimInput("taken-over", { leaseMs: 1000 });
    const mine = claimInput("mine");
    const wrongAttempt = claimInput("wrong-attempt", { leaseMs: 1000 });
    const done = claimInput("done");
    const interrupted = claimInput("interrupted");
    for (const input of [takenOver, mine, wrongAttempt, done, interrupted]) {
      expect((await store.claim(input)).kind).toBe("claimed");
    }
    await clock.travel(5000);
    const successor = claimInput("taken-over");
    expect(await store.claim(successor)).toMatchObject({
      kind: "claimed",
      replaced: "takeover",
      record: { attempt: 2 },
    });
    // The same owner token, taken over by itself: attempt 2 holds the key, attempt 1 does not.
    expect(await store.claim(wrongAttempt)).toMatchObject({ kind: "claimed", record: { attempt: 2 } });
    expect(await store.complete(completion(done))).toBe(true);
    expect(await store.interrupt({ key: interrupted.key, owner: interrupted.owner, attempt: 1 })).toBe(true);
    statements();

    const renewed = await Promise.all([
      store.renew({ key: takenOver.key, owner: takenOver.owner, attempt: 1, leaseMs: 60_000 }),
      store.renew({ key: mine.key, owner: mine.owner, attempt: 1, leaseMs: 120_000 }),
      store.renew({ key: wrongAttempt.key, owner: wrongAttempt.owner, attempt: 1, leaseMs: 60_000 }),
      store.renew({ key: interrupted.key, owner: interrupted.owner, attempt: 1, leaseMs: 60_000 }),
    ]);
    expect(renewed).toEqual([false, true, false, false]);
    expect(statements()).toEqual(["renew"]);
    const mineRecord = await store.get(mine.key);
    expect((mineRecord?.leaseUntil ?? 0) - (mineRecord?.readAt ?? 0)).toBeGreaterThan(60_000);
    statements();

    const results = await Promise.all([
      store.complete(completion(takenOver, 1, { outcome: new Uint8Array([9]) })),
      store.complete(completion(mine, 1, { outcome: new Uint8Array([1]) })),
      store.complete(completion(wrongAttempt, 1, { outcome: new Uint8Array([9]) })),
      store.complete(completion(done, 1)),
      store.complete(completion(interrupted, 1, { outcome: new Uint8Array([9]) })),
    ]);
    expect(results).toEqual([false, true, false, true, false]);
    expect(statements()).toEqual(["complete"]);
    expect(await store.get(takenOver.key)).toMatchObject({
      status: "in_progress",
      owner: successor.owner,
      attempt: 2,
      outcome: undefined,
    });
    expect(await store.get(mine.key)).toMatchObject({ status: "completed", outcome: new Uint8Array([1]) });
    expect(await store.get(wrongAttempt.key)).toMatchObject({ status: "in_progress", attempt: 2, outcome: undefined });
    expect(await store.get(interrupted.key)).toMatchObject({ status: "interrupted", outcome: undefined });
  });

  it("fails only the caller whose values PostgreSQL refuses, and answers its neighbours", async () => {
    const { store, statements } = await openStore();
    const good = [claimInput("good-1"), claimInput("good-2")];
    // A bigint, but now plus it is not: "bigint out of range" for this claim alone.
    const overflowing = claimInput("overflowing", { expiresInMs: 2 ** 63 - 1024 });
    const [first, bad, second] = await Promise.allSettled([
      store.claim(good[0] as ClaimInput),
      store.claim(overflowing),
      store.claim(good[1] as ClaimInput),
    ]);
    expect(first).toMatchObject({ status: "fulfilled", value: { kind: "claimed" } });
    expect(second).toMatchObject({ status: "fulfilled", value: { kind: "claimed" } });
    expect(bad).toMatchObject({ status: "rejected", reason: { code: "22003" } });
    // The batch, then each of its claims alone.
    expect(statements()).toEqual(["claim", "claim", "claim", "claim"]);
    expect(await store.get(overflowing.key)).toBeUndefined();
  });

  it("rejects every caller of a batch whose statement fails, with nothing claimed, and goes on with the next batch", async () => {
    const { store } = await openStore();
    const table = `${schema.name}.${store.table}`;
    // A failure of the statement, not of one input's values: the whole batch fails closed.
    await schema.admin.query(`CREATE FUNCTION ${schema.name}.refuse_${store.table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.key = 'poison' THEN RAISE EXCEPTION 'refused for the test'; END IF;
  RETURN NEW;
END $$`);
    await schema.admin.query(
      `CREATE TRIGGER refuse BEFORE INSERT ON ${table} FOR EACH ROW EXECUTE FUNCTION ${schema.name}.refuse_${store.table}()`,
    );
    const inputs = [claimInput("neighbour-1"), claimInput("poison"), claimInput("neighbour-2")];
    let handlerRuns = 0;
    const calls = await Promise.allSettled(
      inputs.map(async (input) => {
        const claim = await store.claim(input);
        // What the interceptor does: the handler runs only under a claim.
        if (claim.kind === "claimed") handlerRuns++;
        return claim;
      }),
    );
    expect(calls.map((call) => call.status)).toEqual(["rejected", "rejected", "rejected"]);
    expect(calls.map((call) => (call.status === "rejected" ? String(call.reason) : ""))).toEqual(
      inputs.map(() => expect.stringMatching(/refused for the test/)),
    );
    expect(handlerRuns).toBe(0);
    expect((await schema.admin.query(`SELECT key FROM ${table}`)).rows).toEqual([]);
    // The store stays usable: the next batch claims.
    const retried = await Promise.all([store.claim(inputs[0] as ClaimInput), store.claim(inputs[2] as ClaimInput)]);
    expect(retried.map((claim) => claim.kind)).toEqual(["claimed", "claimed"]);
  });

  it("never deadlocks concurrent batches of two stores that claim the same keys in opposite orders", async () => {
    const { store } = await openStore();
    const other = await createPostgresStore({
      pool: clock.pool(),
      schema: schema.name,
      table: store.table,
      sweepIntervalMs: 0,
    });
    try {
      const keys = Array.from({ length: 50 }, (_, i) => `contended-${String(i).padStart(2, "0")}`);
      for (let round = 0; round < 5; round++) {
        const roundKeys = keys.map((key) => `${key}-${round}`);
        const results = await Promise.all([
          Promise.all(roundKeys.map((key) => store.claim(claimInput(key)))),
          Promise.all([...roundKeys].reverse().map((key) => other.claim(claimInput(key)))),
        ]);
        const claimed = results.flat().filter((result) => result.kind === "claimed");
        expect(claimed).toHaveLength(keys.length);
      }
    } finally {
      await other.close();
      await other.pool.end();
    }
  });
});

describe("PostgreSQL prepared statements", () => {
  async function preparedOn(preparedStatements: boolean | undefined): Promise<string[]> {
    const pool = clock.pool();
    const options = { pool, schema: schema.name, table: schema.nextTable(), sweepIntervalMs: 0 };
    const store = await createPostgresStore(
      preparedStatements === undefined ? options : { ...options, preparedStatements },
    );
    try {
      const input = claimInput("prepared");
      expect((await store.claim(input)).kind).toBe("claimed");
      expect(await store.complete(completion(input))).toBe(true);
      // On every connection of the pool: the store's statements are named after a hash of their text.
      const client = await pool.connect();
      try {
        const found = await client.query<{ name: string }>("SELECT name FROM pg_prepared_statements ORDER BY name");
        return found.rows.map((row) => row.name);
      } finally {
        client.release();
      }
    } finally {
      await store.close();
      await pool.end();
    }
  }

  it("names its statements by default, so that connections plan them once", async () => {
    // One after the other, the claim and the completion ran on the connection pool.connect hands out next.
    const named = expect.stringMatching(/^connect_idempotency_[0-9a-f]{24}$/);
    expect(await preparedOn(undefined)).toEqual([named, named]);
  });

  it("sends unnamed statements with preparedStatements: false, for poolers that cannot keep them", async () => {
    expect(await preparedOn(false)).toEqual([]);
  });
});
