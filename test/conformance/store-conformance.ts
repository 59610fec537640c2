import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type {
  ClaimInput,
  ClaimResult,
  CompleteInput,
  IdempotencyRecord,
  IdempotencyStore,
  OwnerInput,
  RecordKey,
} from "../../src/store/idempotency-store.js";
import { claimInput, conformanceKey, expiresInMs, graceMs, leaseMs } from "../support/conformance-claim.js";

/** What a conformance factory hands the suite: a fresh, empty store and its clock. */
export interface ConformanceStore {
  readonly store: IdempotencyStore;
  /**
   * Moves the store's own clock forward by `ms`: a manual clock passed to
   * the store, or the database server's clock as the store's connections see
   * it. Never the test's wall clock, which a store must not consult.
   */
  travel(ms: number): Promise<void>;
  /**
   * Whether the store's clock moves only by `travel`, so that a test can
   * land on a boundary exactly. A database's clock also runs on by itself:
   * such a store is tested with a margin around each boundary instead.
   */
  readonly exact: boolean;
  /** Removes what the store left behind (files, schemas); runs after the suite closed the store. */
  cleanup(): Promise<void>;
}

/**
 * Holds an `IdempotencyStore` implementation to every clause of the
 * interface's JSDoc. Written once, run against each store: `factory` must
 * return a new empty store for every test, with no background sweeping that
 * could delete records behind a test's back.
 *
 * Inputs are durations; the store reads its own clock, which only the
 * factory's `travel` moves (a manual clock's start lies far in the past, so
 * a store that consults the wall clock fails). Boundaries are inclusive: a
 * record whose `expiresAt` equals now is expired, a lease whose `leaseUntil`
 * equals now has ended (the sweeper's `expires_at <= now AND
 * lease_until <= now`); a running claim is taken over once `leaseUntil`
 * plus the grace period is now.
 */
export function describeStoreConformance(name: string, factory: () => Promise<ConformanceStore>): void {
  describe(`IdempotencyStore conformance: ${name}`, () => {
    let store: IdempotencyStore;
    let subject: ConformanceStore;
    // Just short of a boundary: 1 ms on a manual clock, more where the
    // store's clock runs on between a travel and the next statement.
    let before: number;

    beforeEach(async () => {
      subject = await factory();
      store = subject.store;
      before = subject.exact ? 1 : 5_000;
    });

    afterEach(async () => {
      await store.close();
      await subject.cleanup();
    });

    const key = conformanceKey;
    const travel = (ms: number) => subject.travel(ms);

    async function claimed(input: ClaimInput = claimInput()): Promise<IdempotencyRecord> {
      const result = await store.claim(input);
      expect(result.kind).toBe("claimed");
      return result.record;
    }

    function expectClaimed(result: ClaimResult, replaced: "none" | "expired" | "takeover"): IdempotencyRecord {
      expect(result.kind).toBe("claimed");
      expect(result.kind === "claimed" ? result.replaced : undefined).toBe(replaced);
      return result.record;
    }

    function complete(overrides: Partial<CompleteInput> = {}): Promise<boolean> {
      return store.complete({
        key,
        owner: "owner-1",
        attempt: 1,
        outcome: new Uint8Array([8, 1]),
        retentionMs: 60_000,
        ...overrides,
      });
    }

    /** The record as stored, without the time it was read at. */
    function stored(record: IdempotencyRecord | undefined): Omit<IdempotencyRecord, "readAt"> | undefined {
      if (record === undefined) return undefined;
      const { readAt: _, ...rest } = record;
      return rest;
    }

    async function expectStored(record: IdempotencyRecord): Promise<void> {
      expect(stored(await store.get(record))).toEqual(stored(record));
    }

    /** A fresh claim's record: every time follows from the store's clock at the claim, its `readAt`. */
    function expectFresh(record: IdempotencyRecord, input: ClaimInput): void {
      expect(record).toEqual({
        ...input.key,
        status: "in_progress",
        fingerprint: input.fingerprint,
        owner: input.owner,
        attempt: 1,
        createdAt: record.readAt,
        updatedAt: record.readAt,
        leaseUntil: record.readAt + input.leaseMs,
        expiresAt: record.readAt + input.expiresInMs,
        outcome: undefined,
        readAt: record.readAt,
      });
    }

    describe("claim", () => {
      it("claims an absent key and returns the new in-progress record, timed by the store's clock", async () => {
        const input = claimInput();
        const record = expectClaimed(await store.claim(input), "none");
        expectFresh(record, input);
        const read = await store.get(key);
        expect(stored(read)).toEqual(stored(record));
        expect(read!.readAt).toBeGreaterThanOrEqual(record.readAt);
      });

      it("returns a completed, unexpired record as existing, whatever the fingerprint", async () => {
        await claimed();
        expect(await complete({ retentionMs: 10_000 })).toBe(true);
        const done = (await store.get(key))!;
        await travel(10_000 - before);
        for (const fingerprint of ["fp-1", "fp-other"]) {
          const result = await store.claim(claimInput({ owner: "owner-2", fingerprint }));
          expect(result.kind).toBe("existing");
          expect(stored(result.record)).toEqual(stored(done));
          expect(result.record.outcome).toEqual(new Uint8Array([8, 1]));
          expect(result.record.readAt).toBeGreaterThanOrEqual(done.updatedAt + 10_000 - before);
        }
      });

      it("replaces a completed record once it expired, as a fresh start", async () => {
        await claimed();
        expect(await complete({ retentionMs: 10_000 })).toBe(true);
        await travel(10_000);
        const input = claimInput({ owner: "owner-2", fingerprint: "fp-2", leaseMs: 40_000, expiresInMs: 99_000 });
        const record = expectClaimed(await store.claim(input), "expired");
        // A new record: nothing of the old one survives.
        expectFresh(record, input);
        await expectStored(record);
      });

      it("returns an in-progress record with a live lease as existing, even with the same fingerprint", async () => {
        const first = await claimed();
        await travel(leaseMs - before);
        const result = await store.claim(claimInput({ owner: "owner-2" }));
        expect(result.kind).toBe("existing");
        expect(stored(result.record)).toEqual(stored(first));
        expect(result.record.readAt).toBeGreaterThanOrEqual(first.readAt + leaseMs - before);
      });

      it("does not take over a claim at the end of its lease, only once the grace period passed too", async () => {
        const first = await claimed();
        await travel(leaseMs);
        expect((await store.claim(claimInput({ owner: "owner-2" }))).kind).toBe("existing");
        await travel(graceMs - before);
        expect((await store.claim(claimInput({ owner: "owner-2" }))).kind).toBe("existing");
        expect(stored(await store.get(key))).toEqual(stored(first));
        await travel(before);
        const record = expectClaimed(await store.claim(claimInput({ owner: "owner-2", leaseMs: 60_000 })), "takeover");
        expect(record).toEqual({
          ...key,
          status: "in_progress",
          fingerprint: "fp-1",
          owner: "owner-2",
          attempt: 2,
          createdAt: first.createdAt,
          updatedAt: record.readAt,
          leaseUntil: record.readAt + 60_000,
          expiresAt: record.readAt + expiresInMs,
          outcome: undefined,
          readAt: record.readAt,
        });
        expect(record.readAt).toBeGreaterThanOrEqual(first.leaseUntil + graceMs);
        await expectStored(record);
        await travel(60_000 + graceMs);
        const again = expectClaimed(await store.claim(claimInput({ owner: "owner-3" })), "takeover");
        expect(again.attempt).toBe(3);
        expect((await store.get(key))?.owner).toBe("owner-3");
      });

      it("takes over at the end of the lease when the grace period is 0", async () => {
        await claimed(claimInput({ graceMs: 0 }));
        await travel(leaseMs - before);
        expect((await store.claim(claimInput({ owner: "owner-2", graceMs: 0 }))).kind).toBe("existing");
        await travel(before);
        expect(expectClaimed(await store.claim(claimInput({ owner: "owner-2", graceMs: 0 })), "takeover").attempt).toBe(
          2,
        );
      });

      it("never takes over a dead claim with another fingerprint", async () => {
        const first = await claimed();
        await travel(leaseMs + graceMs + 50_000);
        const result = await store.claim(claimInput({ owner: "owner-2", fingerprint: "fp-2" }));
        expect(result.kind).toBe("existing");
        expect(stored(result.record)).toEqual(stored(first));
        await expectStored(first);
      });

      it("treats an expired in-progress record with an ended lease as absent, like the sweeper does", async () => {
        await claimed(claimInput({ leaseMs: 30_000, expiresInMs: 40_000 }));
        await travel(40_000);
        // Even the same payload starts afresh (attempt 1, phases gone): the
        // sweeper may have deleted the record already, and then it would.
        const same = claimInput({ owner: "owner-2" });
        expectFresh(expectClaimed(await store.claim(same), "expired"), same);
        await travel(expiresInMs);
        const other = claimInput({ owner: "owner-3", fingerprint: "fp-2" });
        expectFresh(expectClaimed(await store.claim(other), "expired"), other);
      });

      it("keeps an expired in-progress record while its lease is live", async () => {
        const first = await claimed(claimInput({ leaseMs: 50_000, expiresInMs: 40_000 }));
        await travel(45_000);
        const result = await store.claim(claimInput({ owner: "owner-2", fingerprint: "fp-2" }));
        expect(result.kind).toBe("existing");
        expect(stored(result.record)).toEqual(stored(first));
      });

      it("lets exactly one of 100 concurrent claims of one key win", async () => {
        const results = await Promise.all(
          Array.from({ length: 100 }, (_, i) => store.claim(claimInput({ owner: `owner-${i}` }))),
        );
        const winners = results.filter((result) => result.kind === "claimed");
        expect(winners).toHaveLength(1);
        const winner = winners[0]!.record.owner;
        for (const result of results) {
          expect(result.record.owner).toBe(winner);
          expect(result.record.attempt).toBe(1);
        }
        expect((await store.get(key))?.owner).toBe(winner);
      });

      it("lets exactly one of concurrent takeovers of a dead claim win", async () => {
        await claimed();
        await travel(leaseMs + graceMs);
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => store.claim(claimInput({ owner: `owner-${i + 2}` }))),
        );
        const winners = results.filter((result) => result.kind === "claimed");
        expect(winners).toHaveLength(1);
        expect(winners[0]!.record.attempt).toBe(2);
        for (const result of results) {
          expect(result.record.owner).toBe(winners[0]!.record.owner);
        }
      });
    });

    describe("interrupt", () => {
      it("marks the running claim interrupted and ends its lease now, keeping the record", async () => {
        const first = await claimed();
        await travel(1_000);
        expect(await store.interrupt({ key, owner: "owner-1", attempt: 1 })).toBe(true);
        const record = (await store.get(key))!;
        expect(record).toMatchObject({
          status: "interrupted",
          owner: "owner-1",
          attempt: 1,
          fingerprint: "fp-1",
          createdAt: first.createdAt,
          expiresAt: first.expiresAt,
          outcome: undefined,
        });
        expect(record.leaseUntil).toBeGreaterThanOrEqual(first.createdAt + 1_000);
        expect(record.leaseUntil).toBeLessThanOrEqual(record.readAt);
        expect(record.leaseUntil).toBeLessThan(first.leaseUntil);
      });

      it("lets the same payload take the interrupted claim over at once, counting the attempt up", async () => {
        const first = await claimed();
        expect(await store.interrupt({ key, owner: "owner-1", attempt: 1 })).toBe(true);
        const record = expectClaimed(await store.claim(claimInput({ owner: "owner-2" })), "takeover");
        expect(record).toEqual({
          ...key,
          status: "in_progress",
          fingerprint: "fp-1",
          owner: "owner-2",
          attempt: 2,
          createdAt: first.createdAt,
          updatedAt: record.readAt,
          leaseUntil: record.readAt + leaseMs,
          expiresAt: record.readAt + expiresInMs,
          outcome: undefined,
          readAt: record.readAt,
        });
        await expectStored(record);
        // The new attempt is a running claim like any other.
        expect((await store.claim(claimInput({ owner: "owner-3" }))).kind).toBe("existing");
        expect(await store.interrupt({ key, owner: "owner-2", attempt: 2 })).toBe(true);
        expect(expectClaimed(await store.claim(claimInput({ owner: "owner-3" })), "takeover").attempt).toBe(3);
      });

      it("never lets another payload take an interrupted claim over", async () => {
        await claimed();
        expect(await store.interrupt({ key, owner: "owner-1", attempt: 1 })).toBe(true);
        const interrupted = (await store.get(key))!;
        await travel(leaseMs + graceMs + 1_000);
        const result = await store.claim(claimInput({ owner: "owner-2", fingerprint: "fp-2" }));
        expect(result.kind).toBe("existing");
        expect(stored(result.record)).toEqual(stored(interrupted));
        expect(result.record.status).toBe("interrupted");
      });

      it("is idempotent for its owner: a second interrupt succeeds and keeps the first end of the lease", async () => {
        await claimed();
        expect(await store.interrupt({ key, owner: "owner-1", attempt: 1 })).toBe(true);
        const once = (await store.get(key))!;
        await travel(1_000);
        expect(await store.interrupt({ key, owner: "owner-1", attempt: 1 })).toBe(true);
        const twice = (await store.get(key))!;
        expect(twice.status).toBe("interrupted");
        expect(twice.leaseUntil).toBe(once.leaseUntil);
      });

      it("refuses another owner, another attempt, a completed record and an absent key", async () => {
        expect(await store.interrupt({ key, owner: "owner-1", attempt: 1 })).toBe(false);
        const first = await claimed();
        expect(await store.interrupt({ key, owner: "owner-2", attempt: 1 })).toBe(false);
        expect(await store.interrupt({ key, owner: "owner-1", attempt: 2 })).toBe(false);
        await expectStored(first);
        expect(await complete()).toBe(true);
        expect(await store.interrupt({ key, owner: "owner-1", attempt: 1 })).toBe(false);
        expect((await store.get(key))?.status).toBe("completed");
      });

      it("ends the writes of the interrupted execution: it can no longer complete, renew or release", async () => {
        await claimed();
        expect(await store.interrupt({ key, owner: "owner-1", attempt: 1 })).toBe(true);
        expect(await complete()).toBe(false);
        expect(await store.renew({ key, owner: "owner-1", attempt: 1, leaseMs: 60_000 })).toBe(false);
        expect(await store.release({ key, owner: "owner-1", attempt: 1 })).toBe(false);
        expect((await store.get(key))?.status).toBe("interrupted");
      });

      it("lets an interrupted record expire like any other", async () => {
        await claimed(claimInput({ expiresInMs: 50_000 }));
        expect(await store.interrupt({ key, owner: "owner-1", attempt: 1 })).toBe(true);
        await travel(50_000);
        const input = claimInput({ owner: "owner-2", fingerprint: "fp-2" });
        expectFresh(expectClaimed(await store.claim(input), "expired"), input);
      });
    });

    describe("fencing by attempt", () => {
      it("refuses every write of an earlier attempt, even under the same owner token", async () => {
        await claimed();
        expect(await store.interrupt({ key, owner: "owner-1", attempt: 1 })).toBe(true);
        // The same token claims again: only the attempt tells the executions apart.
        const second = expectClaimed(await store.claim(claimInput()), "takeover");
        expect(second.attempt).toBe(2);
        const stale: OwnerInput = { key, owner: "owner-1", attempt: 1 };
        expect(await complete({ attempt: 1 })).toBe(false);
        expect(await store.renew({ ...stale, leaseMs: 900_000 })).toBe(false);
        expect(await store.interrupt(stale)).toBe(false);
        expect(await store.release(stale)).toBe(false);
        await expectStored(second);
        expect(await complete({ attempt: 2 })).toBe(true);
      });

      it("refuses the old owner after a takeover, and accepts the new one", async () => {
        await claimed();
        await travel(leaseMs + graceMs);
        const taken = expectClaimed(await store.claim(claimInput({ owner: "owner-2" })), "takeover");
        expect(await complete({ owner: "owner-1", attempt: 1 })).toBe(false);
        expect(await complete({ owner: "owner-1", attempt: 2 })).toBe(false);
        expect(await store.renew({ key, owner: "owner-1", attempt: 1, leaseMs: 60_000 })).toBe(false);
        expect(await store.interrupt({ key, owner: "owner-1", attempt: 1 })).toBe(false);
        expect(await store.release({ key, owner: "owner-1", attempt: 1 })).toBe(false);
        await expectStored(taken);
        expect(await complete({ owner: "owner-2", attempt: 2, outcome: new Uint8Array([2]) })).toBe(true);
        expect((await store.get(key))?.outcome).toEqual(new Uint8Array([2]));
      });
    });

    describe("complete", () => {
      it("stores the outcome bytes exactly and marks the record completed, timed by the store's clock", async () => {
        const first = await claimed();
        await travel(500);
        const outcome = new Uint8Array(256 * 1024);
        for (let i = 0; i < outcome.length; i++) outcome[i] = (i * 7919 + (i >> 8)) & 0xff;
        expect(await complete({ outcome, retentionMs: 3_600_000 })).toBe(true);
        const record = (await store.get(key))!;
        expect(record).toMatchObject({
          status: "completed",
          owner: "owner-1",
          fingerprint: "fp-1",
          attempt: 1,
          createdAt: first.createdAt,
        });
        expect(record.updatedAt).toBeGreaterThanOrEqual(first.createdAt + 500);
        expect(record.updatedAt).toBeLessThanOrEqual(record.readAt);
        // A completed record's lease ended when it completed.
        expect(record.leaseUntil).toBe(record.updatedAt);
        expect(record.expiresAt).toBe(record.updatedAt + 3_600_000);
        expect(record.outcome).toBeInstanceOf(Uint8Array);
        expect(Buffer.from(record.outcome!).equals(Buffer.from(outcome))).toBe(true);
      });

      it("stores an empty outcome as empty bytes, not as no outcome", async () => {
        await claimed();
        expect(await complete({ outcome: new Uint8Array(0) })).toBe(true);
        const record = await store.get(key);
        expect(record?.status).toBe("completed");
        expect(record?.outcome).toEqual(new Uint8Array(0));
      });

      it("refuses another owner or attempt and leaves the claim untouched", async () => {
        const first = await claimed();
        expect(await complete({ owner: "owner-2" })).toBe(false);
        expect(await complete({ attempt: 2 })).toBe(false);
        await expectStored(first);
      });

      it("is idempotent for its owner: a retried completion whose first try committed succeeds and changes nothing", async () => {
        await claimed();
        // The answer of the first call is lost (a connection cut after COMMIT); the caller retries it as it was.
        expect(await complete({ outcome: new Uint8Array([7]) })).toBe(true);
        const done = (await store.get(key))!;
        await travel(1_000);
        expect(await complete({ outcome: new Uint8Array([7]) })).toBe(true);
        expect(stored(await store.get(key))).toEqual(stored(done));
        // Even a retry with other bytes never overwrites the stored outcome.
        expect(await complete({ outcome: new Uint8Array([9]) })).toBe(true);
        expect((await store.get(key))?.outcome).toEqual(new Uint8Array([7]));
        // Another execution's completion is refused.
        expect(await complete({ owner: "owner-2" })).toBe(false);
        expect(await complete({ attempt: 2 })).toBe(false);
        expect(stored(await store.get(key))).toEqual(stored(done));
      });

      it("refuses the completion of an owner whose completed record expired and was claimed again", async () => {
        await claimed();
        expect(await complete({ retentionMs: 1_000 })).toBe(true);
        await travel(1_000);
        expectClaimed(await store.claim(claimInput({ owner: "owner-2" })), "expired");
        expect(await complete()).toBe(false);
        expect((await store.get(key))?.owner).toBe("owner-2");
      });

      it("returns false for an absent key", async () => {
        expect(await complete()).toBe(false);
        expect(await store.get(key)).toBeUndefined();
      });
    });

    describe("release", () => {
      it("deletes the claim of its owner, so that the next claim finds nothing", async () => {
        await claimed();
        expect(await store.release({ key, owner: "owner-1", attempt: 1 })).toBe(true);
        expect(await store.get(key)).toBeUndefined();
        expectClaimed(await store.claim(claimInput({ owner: "owner-2", fingerprint: "fp-2" })), "none");
      });

      it("refuses another owner or attempt, an old owner after a takeover, and a completed record", async () => {
        const first = await claimed();
        expect(await store.release({ key, owner: "owner-2", attempt: 1 })).toBe(false);
        expect(await store.release({ key, owner: "owner-1", attempt: 2 })).toBe(false);
        await expectStored(first);

        await travel(leaseMs + graceMs);
        await claimed(claimInput({ owner: "owner-2" }));
        expect(await store.release({ key, owner: "owner-1", attempt: 1 })).toBe(false);
        expect((await store.get(key))?.owner).toBe("owner-2");

        expect(await complete({ owner: "owner-2", attempt: 2, outcome: new Uint8Array([3]) })).toBe(true);
        expect(await store.release({ key, owner: "owner-2", attempt: 2 })).toBe(false);
        expect((await store.get(key))?.outcome).toEqual(new Uint8Array([3]));
      });

      it("returns false for an absent key", async () => {
        expect(await store.release({ key, owner: "owner-1", attempt: 1 })).toBe(false);
      });
    });

    describe("renew", () => {
      it("extends the lease of its owner from now, which keeps the claim from being taken over", async () => {
        const first = await claimed();
        await travel(20_000);
        expect(await store.renew({ key, owner: "owner-1", attempt: 1, leaseMs: 30_000 })).toBe(true);
        const record = (await store.get(key))!;
        expect(record.leaseUntil).toBeGreaterThanOrEqual(first.createdAt + 50_000);
        expect(record.leaseUntil).toBeLessThanOrEqual(record.readAt + 30_000);
        expect(record).toMatchObject({ owner: "owner-1", attempt: 1, status: "in_progress" });
        // Past the first lease and its grace, within the renewed one.
        await travel(leaseMs + graceMs - 20_000);
        expect((await store.claim(claimInput({ owner: "owner-2" }))).kind).toBe("existing");
        await travel(20_000 + graceMs);
        expectClaimed(await store.claim(claimInput({ owner: "owner-2" })), "takeover");
      });

      it("refuses another owner or attempt, an old owner after a takeover, and a completed record", async () => {
        const first = await claimed();
        expect(await store.renew({ key, owner: "owner-2", attempt: 1, leaseMs: 90_000 })).toBe(false);
        expect(await store.renew({ key, owner: "owner-1", attempt: 2, leaseMs: 90_000 })).toBe(false);
        expect((await store.get(key))?.leaseUntil).toBe(first.leaseUntil);

        await travel(leaseMs + graceMs);
        const taken = await claimed(claimInput({ owner: "owner-2" }));
        expect(await store.renew({ key, owner: "owner-1", attempt: 1, leaseMs: 900_000 })).toBe(false);
        expect((await store.get(key))?.leaseUntil).toBe(taken.leaseUntil);

        expect(await complete({ owner: "owner-2", attempt: 2 })).toBe(true);
        expect(await store.renew({ key, owner: "owner-2", attempt: 2, leaseMs: 900_000 })).toBe(false);
        expect((await store.get(key))?.status).toBe("completed");
      });

      it("returns false for an absent key", async () => {
        expect(await store.renew({ key, owner: "owner-1", attempt: 1, leaseMs: 9 })).toBe(false);
      });
    });

    describe("get", () => {
      it("returns undefined for an absent key", async () => {
        expect(await store.get(key)).toBeUndefined();
      });

      it("returns expired records too, read at the store's clock: the caller judges expiry", async () => {
        await claimed();
        expect(await complete({ retentionMs: 1_000 })).toBe(true);
        await travel(5_000);
        const record = (await store.get(key))!;
        expect(record.status).toBe("completed");
        expect(record.expiresAt).toBe(record.updatedAt + 1_000);
        expect(record.readAt).toBeGreaterThanOrEqual(record.expiresAt + 4_000);
      });
    });

    describe("identity", () => {
      it("keeps the same request ID in another scope or on another method apart", async () => {
        const otherScope: RecordKey = { ...key, scope: "tenant-b" };
        const otherMethod: RecordKey = { ...key, method: "demo.v1.PaymentService/RefundPayment" };
        const emptyScope: RecordKey = { ...key, scope: "" };
        await claimed();
        for (const [i, other] of [otherScope, otherMethod, emptyScope].entries()) {
          const result = await store.claim(
            claimInput({ key: other, owner: `other-${i}`, fingerprint: `fp-other-${i}` }),
          );
          expect(expectClaimed(result, "none")).toMatchObject({ ...other, owner: `other-${i}` });
        }
        expect(await complete({ key: otherScope, owner: "other-0", outcome: new Uint8Array([7]) })).toBe(true);
        expect(await store.release({ key: otherMethod, owner: "other-1", attempt: 1 })).toBe(true);
        expect(await store.interrupt({ key: emptyScope, owner: "other-2", attempt: 1 })).toBe(true);
        // The original record saw none of that.
        expect(await store.get(key)).toMatchObject({ status: "in_progress", owner: "owner-1", fingerprint: "fp-1" });
        expect(await store.get(otherScope)).toMatchObject({ status: "completed", outcome: new Uint8Array([7]) });
        expect(await store.get(otherMethod)).toBeUndefined();
        expect(await store.get(emptyScope)).toMatchObject({ owner: "other-2", status: "interrupted" });
      });

      it("keeps keys verbatim: case, Unicode and separators are part of the key", async () => {
        const keys = ["abc", "ABC", "ümlaut-✓", "a/b", "a b", "tenant-a|x"].map((k) => ({ ...key, key: k }));
        for (const [i, k] of keys.entries()) {
          expectClaimed(await store.claim(claimInput({ key: k, owner: `o-${i}` })), "none");
        }
        for (const [i, k] of keys.entries()) {
          expect((await store.get(k))?.owner).toBe(`o-${i}`);
        }
      });
    });

    describe("sweep", () => {
      /** Creates one record under request ID `id`: a claim with these durations, completed or interrupted at once if asked. */
      async function seed(
        id: string,
        durations: { leaseMs: number; expiresInMs: number },
        end?: { complete: number } | "interrupt",
      ): Promise<RecordKey> {
        const k = { ...key, key: id };
        await claimed(claimInput({ key: k, owner: id, ...durations }));
        if (end === "interrupt") {
          expect(await store.interrupt({ key: k, owner: id, attempt: 1 })).toBe(true);
        } else if (end !== undefined) {
          expect(await complete({ key: k, owner: id, retentionMs: end.complete })).toBe(true);
        }
        return k;
      }

      it("deletes only expired records whose lease also ended, by the store's clock", async () => {
        const long = 1_000_000_000;
        const completedExpired = await seed(
          "completed-expired",
          { leaseMs: 10, expiresInMs: long },
          { complete: 100_000 },
        );
        const completedLive = await seed("completed-live", { leaseMs: 10, expiresInMs: long }, { complete: 200_000 });
        const claimExpiredLeaseLive = await seed("claim-expired-lease-live", { leaseMs: 200_000, expiresInMs: 50_000 });
        const claimExpiredLeaseEnded = await seed("claim-expired-lease-ended", {
          leaseMs: 50_000,
          expiresInMs: 60_000,
        });
        const claimLiveLeaseEnded = await seed("claim-live-lease-ended", { leaseMs: 10, expiresInMs: long });
        const interruptedExpired = await seed(
          "interrupted-expired",
          { leaseMs: 200_000, expiresInMs: 90_000 },
          "interrupt",
        );
        const interruptedLive = await seed("interrupted-live", { leaseMs: 10, expiresInMs: long }, "interrupt");
        expect(await store.sweep({ limit: 100 })).toBe(0);
        await travel(100_000 + before);
        expect(await store.sweep({ limit: 100 })).toBe(3);
        for (const gone of [completedExpired, claimExpiredLeaseEnded, interruptedExpired]) {
          expect(await store.get(gone)).toBeUndefined();
        }
        for (const kept of [completedLive, claimExpiredLeaseLive, claimLiveLeaseEnded, interruptedLive]) {
          expect(await store.get(kept)).toBeDefined();
        }
        expect(await store.sweep({ limit: 100 })).toBe(0);
      });

      it("deletes at most limit records per call", async () => {
        for (let i = 0; i < 5; i++) await seed(`expired-${i}`, { leaseMs: 10, expiresInMs: 20 }, { complete: 20 });
        const live = await seed("live", { leaseMs: 10, expiresInMs: 1_000_000 }, { complete: 1_000_000 });
        await travel(100);
        expect(await store.sweep({ limit: 2 })).toBe(2);
        expect(await store.sweep({ limit: 2 })).toBe(2);
        expect(await store.sweep({ limit: 2 })).toBe(1);
        expect(await store.sweep({ limit: 2 })).toBe(0);
        expect(await store.get(live)).toBeDefined();
      });

      it("judges expiry by the store's clock, not by the wall clock", async () => {
        const k = await seed("old", { leaseMs: 10, expiresInMs: 1_000 }, { complete: 20_000 });
        await travel(20_000 - before);
        expect(await store.sweep({ limit: 10 })).toBe(0);
        expect((await store.claim(claimInput({ key: k, owner: "owner-2" }))).kind).toBe("existing");
        await travel(before);
        expect(await store.sweep({ limit: 10 })).toBe(1);
        expect(await store.get(k)).toBeUndefined();
      });
    });

    describe("tombstones", () => {
      const retentionMs = 60_000;
      const tombstoneMs = 600_000;

      async function completedWithTombstone(outcomeCode = 0): Promise<IdempotencyRecord> {
        await claimed(claimInput({ expiresInMs: 1_000 }));
        expect(await complete({ retentionMs, tombstoneMs, outcomeCode })).toBe(true);
        const record = await store.get(key);
        if (record === undefined) throw new Error("the completed record is missing");
        return record;
      }

      it("a completion with a tombstone period replays until replayUntil and keeps the key until expiresAt", async () => {
        const record = await completedWithTombstone(5);
        expect(record).toMatchObject({ status: "completed", outcomeCode: 5, outcome: new Uint8Array([8, 1]) });
        expect(record.replayUntil).toBe(record.updatedAt + retentionMs);
        expect(record.expiresAt).toBe(record.updatedAt + retentionMs + tombstoneMs);
        await travel(retentionMs - before);
        expect((await store.get(key))?.status).toBe("completed");
        await travel(before);
        expect(await store.get(key)).toMatchObject({
          status: "tombstoned",
          outcomeCode: 5,
          updatedAt: record.updatedAt,
        });
      });

      it("a claim finds a tombstone, for the same payload and for another, and never replaces it", async () => {
        await completedWithTombstone();
        await travel(retentionMs + before);
        for (const fingerprint of [claimInput().fingerprint, "f".repeat(64)]) {
          const found = await store.claim(claimInput({ owner: "owner-2", fingerprint }));
          expect(found).toMatchObject({ kind: "existing", record: { status: "tombstoned", owner: "owner-1" } });
        }
      });

      it("the sweeper drops a tombstone's outcome and keeps the rest intact, then deletes it once it expires", async () => {
        const record = await completedWithTombstone(9);
        expect(await store.sweep({ limit: 10 })).toBe(0);
        expect((await store.get(key))?.outcome).toEqual(new Uint8Array([8, 1]));
        await travel(retentionMs + before);
        expect(await store.sweep({ limit: 10 })).toBe(0);
        // Read back through the checksum: a stale one would throw STORE_CORRUPT.
        const tombstone = await store.get(key);
        expect(stored(tombstone)).toEqual({ ...stored(record), status: "tombstoned", outcome: undefined });
        expect((await store.claim(claimInput({ owner: "owner-2" }))).kind).toBe("existing");
        await travel(tombstoneMs);
        expect(await store.sweep({ limit: 10 })).toBe(1);
        expect(await store.get(key)).toBeUndefined();
      });

      it("frees the key once the tombstone expires, swept or not", async () => {
        await completedWithTombstone();
        await travel(retentionMs + tombstoneMs - before);
        expect((await store.claim(claimInput({ owner: "owner-2" }))).kind).toBe("existing");
        await travel(before);
        const fresh = expectClaimed(await store.claim(claimInput({ owner: "owner-2" })), "expired");
        expect(fresh.replayUntil).toBeUndefined();
        expect((await store.get(key))?.replayUntil).toBeUndefined();
      });

      it("without a tombstone period a record replays until it expires and has no replay end, as before", async () => {
        await claimed();
        expect(await complete({ retentionMs, tombstoneMs: 0, outcomeCode: 3 })).toBe(true);
        const record = await store.get(key);
        expect(record).toMatchObject({ status: "completed", replayUntil: undefined, outcomeCode: undefined });
        expect(record?.expiresAt).toBe((record?.updatedAt ?? 0) + retentionMs);
        await travel(retentionMs - before);
        expect(await store.sweep({ limit: 10 })).toBe(0);
        expect((await store.get(key))?.outcome).toEqual(new Uint8Array([8, 1]));
      });
    });

    describe("blockingWaitMs", () => {
      it("is absent or a number of milliseconds", () => {
        expect(store.blockingWaitMs ?? 0).toBeGreaterThanOrEqual(0);
      });
    });

    describe("close", () => {
      it("is idempotent, and operations afterwards reject instead of hanging", async () => {
        await claimed();
        await store.close();
        await store.close();
        await expect(store.claim(claimInput({ owner: "owner-2" }))).rejects.toThrow();
        await expect(store.get(key)).rejects.toThrow();
      });
    });
  });
}
