import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type {
  ClaimInput,
  ClaimResult,
  IdempotencyRecord,
  IdempotencyStore,
  RecordKey,
} from "../src/store/idempotency-store.js";
import { claimInput, conformanceKey, t0 } from "./support/conformance-claim.js";

/** What a conformance factory hands the suite: a fresh, empty store. */
export interface ConformanceStore {
  readonly store: IdempotencyStore;
  /** Removes what the store left behind (files, schemas); runs after the suite closed the store. */
  cleanup(): Promise<void>;
}

/**
 * Holds an `IdempotencyStore` implementation to every clause of the
 * interface's JSDoc. Written once, run against each store: `factory` must
 * return a new empty store for every test, with no background sweeping that
 * could delete records behind a test's back.
 *
 * All times are explicit and far in the past, so a store that consults the
 * wall clock instead of its inputs fails. Boundaries are inclusive: a record
 * whose `expiresAt` equals `now` is expired, a lease whose `leaseUntil`
 * equals `now` has ended (the sweeper's `expires_at <= now AND
 * lease_until <= now`).
 */
export function describeStoreConformance(name: string, factory: () => Promise<ConformanceStore>): void {
  describe(`IdempotencyStore conformance: ${name}`, () => {
    let store: IdempotencyStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await factory());
    });

    afterEach(async () => {
      await store.close();
      await cleanup();
    });

    const key = conformanceKey;

    async function claimed(input: ClaimInput): Promise<IdempotencyRecord> {
      const result = await store.claim(input);
      expect(result.kind).toBe("claimed");
      return result.record;
    }

    /** Claims and completes `key`, returning the outcome it stored. */
    async function completeRecord(expiresAt: number, outcome = new Uint8Array([8, 1])): Promise<Uint8Array> {
      await claimed(claimInput());
      expect(await store.complete({ key, owner: "owner-1", outcome, now: t0 + 100, expiresAt })).toBe(true);
      return outcome;
    }

    function expectClaimed(result: ClaimResult, replaced: "none" | "expired" | "takeover"): IdempotencyRecord {
      expect(result.kind).toBe("claimed");
      expect(result.kind === "claimed" ? result.replaced : undefined).toBe(replaced);
      return result.record;
    }

    describe("claim", () => {
      it("claims an absent key and returns the new in-progress record", async () => {
        const result = await store.claim(claimInput());
        const record = expectClaimed(result, "none");
        expect(record).toEqual({
          ...key,
          status: "in_progress",
          fingerprint: "fp-1",
          owner: "owner-1",
          createdAt: t0,
          updatedAt: t0,
          leaseUntil: t0 + 30_000,
          expiresAt: t0 + 86_400_000,
          takeovers: 0,
          outcome: undefined,
        });
        expect(await store.get(key)).toEqual(record);
      });

      it("returns a completed, unexpired record as existing, whatever the fingerprint", async () => {
        const outcome = await completeRecord(t0 + 10_000);
        for (const fingerprint of ["fp-1", "fp-other"]) {
          const result = await store.claim(claimInput({ owner: "owner-2", fingerprint, now: t0 + 9_999 }));
          expect(result.kind).toBe("existing");
          expect(result.record.status).toBe("completed");
          expect(result.record.owner).toBe("owner-1");
          expect(result.record.outcome).toEqual(outcome);
        }
      });

      it("replaces a completed record once it expired, at exactly expiresAt", async () => {
        await completeRecord(t0 + 10_000);
        const result = await store.claim(
          claimInput({ owner: "owner-2", fingerprint: "fp-2", now: t0 + 10_000, leaseUntil: t0 + 40_000, expiresAt: t0 + 99_000 }),
        );
        const record = expectClaimed(result, "expired");
        // A new record: nothing of the old one survives.
        expect(record).toEqual({
          ...key,
          status: "in_progress",
          fingerprint: "fp-2",
          owner: "owner-2",
          createdAt: t0 + 10_000,
          updatedAt: t0 + 10_000,
          leaseUntil: t0 + 40_000,
          expiresAt: t0 + 99_000,
          takeovers: 0,
          outcome: undefined,
        });
        expect(await store.get(key)).toEqual(record);
      });

      it("returns an in-progress record with a live lease as existing, even with the same fingerprint", async () => {
        const first = await claimed(claimInput());
        const result = await store.claim(claimInput({ owner: "owner-2", now: t0 + 29_999 }));
        expect(result).toEqual({ kind: "existing", record: first });
      });

      it("takes over an in-progress record whose lease ended, with the same fingerprint", async () => {
        await claimed(claimInput());
        const result = await store.claim(
          claimInput({ owner: "owner-2", now: t0 + 30_000, leaseUntil: t0 + 60_000, expiresAt: t0 + 90_000_000 }),
        );
        const record = expectClaimed(result, "takeover");
        expect(record).toEqual({
          ...key,
          status: "in_progress",
          fingerprint: "fp-1",
          owner: "owner-2",
          createdAt: t0,
          updatedAt: t0 + 30_000,
          leaseUntil: t0 + 60_000,
          expiresAt: t0 + 90_000_000,
          takeovers: 1,
          outcome: undefined,
        });
        const again = await store.claim(claimInput({ owner: "owner-3", now: t0 + 60_000, leaseUntil: t0 + 90_000 }));
        expect(expectClaimed(again, "takeover").takeovers).toBe(2);
        expect((await store.get(key))?.owner).toBe("owner-3");
      });

      it("never takes over a dead claim with another fingerprint", async () => {
        const first = await claimed(claimInput());
        const result = await store.claim(claimInput({ owner: "owner-2", fingerprint: "fp-2", now: t0 + 50_000 }));
        expect(result).toEqual({ kind: "existing", record: first });
        expect(await store.get(key)).toEqual(first);
      });

      it("treats an expired in-progress record with an ended lease as absent, like the sweeper does", async () => {
        await claimed(claimInput({ leaseUntil: t0 + 30_000, expiresAt: t0 + 40_000 }));
        const result = await store.claim(claimInput({ owner: "owner-2", fingerprint: "fp-2", now: t0 + 40_000 }));
        const record = expectClaimed(result, "expired");
        expect(record.fingerprint).toBe("fp-2");
        expect(record.takeovers).toBe(0);
        expect(record.createdAt).toBe(t0 + 40_000);
      });

      it("keeps an expired in-progress record while its lease is live", async () => {
        const first = await claimed(claimInput({ leaseUntil: t0 + 50_000, expiresAt: t0 + 40_000 }));
        const result = await store.claim(claimInput({ owner: "owner-2", fingerprint: "fp-2", now: t0 + 45_000 }));
        expect(result).toEqual({ kind: "existing", record: first });
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
        }
        expect((await store.get(key))?.owner).toBe(winner);
      });

      it("lets exactly one of concurrent takeovers of a dead claim win", async () => {
        await claimed(claimInput());
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            store.claim(claimInput({ owner: `owner-${i + 2}`, now: t0 + 31_000, leaseUntil: t0 + 61_000 })),
          ),
        );
        const winners = results.filter((result) => result.kind === "claimed");
        expect(winners).toHaveLength(1);
        expect(winners[0]!.record.takeovers).toBe(1);
      });
    });

    describe("complete", () => {
      it("stores the outcome bytes exactly and marks the record completed", async () => {
        await claimed(claimInput());
        const outcome = new Uint8Array(256 * 1024);
        for (let i = 0; i < outcome.length; i++) outcome[i] = (i * 7919 + (i >> 8)) & 0xff;
        expect(await store.complete({ key, owner: "owner-1", outcome, now: t0 + 500, expiresAt: t0 + 3_600_000 })).toBe(
          true,
        );
        const record = await store.get(key);
        expect(record).toMatchObject({
          status: "completed",
          owner: "owner-1",
          fingerprint: "fp-1",
          createdAt: t0,
          updatedAt: t0 + 500,
          expiresAt: t0 + 3_600_000,
          takeovers: 0,
        });
        expect(record?.outcome).toBeInstanceOf(Uint8Array);
        expect(Buffer.from(record!.outcome!).equals(Buffer.from(outcome))).toBe(true);
      });

      it("stores an empty outcome as empty bytes, not as no outcome", async () => {
        await claimed(claimInput());
        expect(await store.complete({ key, owner: "owner-1", outcome: new Uint8Array(0), now: t0 + 1, expiresAt: t0 + 9 })).toBe(
          true,
        );
        const record = await store.get(key);
        expect(record?.status).toBe("completed");
        expect(record?.outcome).toEqual(new Uint8Array(0));
      });

      it("refuses another owner and leaves the claim untouched", async () => {
        const first = await claimed(claimInput());
        expect(
          await store.complete({ key, owner: "owner-2", outcome: new Uint8Array([1]), now: t0 + 1, expiresAt: t0 + 9 }),
        ).toBe(false);
        expect(await store.get(key)).toEqual(first);
      });

      it("refuses the old owner after a takeover, and accepts the new one", async () => {
        await claimed(claimInput());
        const taken = await claimed(claimInput({ owner: "owner-2", now: t0 + 31_000, leaseUntil: t0 + 61_000 }));
        expect(
          await store.complete({ key, owner: "owner-1", outcome: new Uint8Array([1]), now: t0 + 32_000, expiresAt: t0 + 99_000 }),
        ).toBe(false);
        expect(await store.get(key)).toEqual(taken);
        expect(
          await store.complete({ key, owner: "owner-2", outcome: new Uint8Array([2]), now: t0 + 33_000, expiresAt: t0 + 99_000 }),
        ).toBe(true);
        expect((await store.get(key))?.outcome).toEqual(new Uint8Array([2]));
      });

      it("never overwrites a stored outcome", async () => {
        const outcome = await completeRecord(t0 + 50_000);
        expect(
          await store.complete({ key, owner: "owner-1", outcome: new Uint8Array([9]), now: t0 + 200, expiresAt: t0 + 60_000 }),
        ).toBe(false);
        const record = await store.get(key);
        expect(record?.outcome).toEqual(outcome);
        expect(record?.expiresAt).toBe(t0 + 50_000);
      });

      it("returns false for an absent key", async () => {
        expect(
          await store.complete({ key, owner: "owner-1", outcome: new Uint8Array([1]), now: t0, expiresAt: t0 + 9 }),
        ).toBe(false);
        expect(await store.get(key)).toBeUndefined();
      });
    });

    describe("release", () => {
      it("deletes the claim of its owner, so that the next claim finds nothing", async () => {
        await claimed(claimInput());
        expect(await store.release({ key, owner: "owner-1" })).toBe(true);
        expect(await store.get(key)).toBeUndefined();
        expectClaimed(await store.claim(claimInput({ owner: "owner-2", fingerprint: "fp-2", now: t0 + 1 })), "none");
      });

      it("refuses another owner, an old owner after a takeover, and a completed record", async () => {
        const first = await claimed(claimInput());
        expect(await store.release({ key, owner: "owner-2" })).toBe(false);
        expect(await store.get(key)).toEqual(first);

        await claimed(claimInput({ owner: "owner-2", now: t0 + 31_000, leaseUntil: t0 + 61_000 }));
        expect(await store.release({ key, owner: "owner-1" })).toBe(false);
        expect((await store.get(key))?.owner).toBe("owner-2");

        expect(
          await store.complete({ key, owner: "owner-2", outcome: new Uint8Array([3]), now: t0 + 32_000, expiresAt: t0 + 99_000 }),
        ).toBe(true);
        expect(await store.release({ key, owner: "owner-2" })).toBe(false);
        expect((await store.get(key))?.outcome).toEqual(new Uint8Array([3]));
      });

      it("returns false for an absent key", async () => {
        expect(await store.release({ key, owner: "owner-1" })).toBe(false);
      });
    });

    describe("renew", () => {
      it("extends the lease of its owner, which keeps the claim from being taken over", async () => {
        await claimed(claimInput());
        expect(await store.renew({ key, owner: "owner-1", leaseUntil: t0 + 90_000 })).toBe(true);
        const record = await store.get(key);
        expect(record?.leaseUntil).toBe(t0 + 90_000);
        expect(record?.owner).toBe("owner-1");
        const during = await store.claim(claimInput({ owner: "owner-2", now: t0 + 60_000 }));
        expect(during.kind).toBe("existing");
        const after = await store.claim(claimInput({ owner: "owner-2", now: t0 + 90_000, leaseUntil: t0 + 120_000 }));
        expectClaimed(after, "takeover");
      });

      it("refuses another owner, an old owner after a takeover, and a completed record", async () => {
        await claimed(claimInput());
        expect(await store.renew({ key, owner: "owner-2", leaseUntil: t0 + 90_000 })).toBe(false);
        expect((await store.get(key))?.leaseUntil).toBe(t0 + 30_000);

        await claimed(claimInput({ owner: "owner-2", now: t0 + 31_000, leaseUntil: t0 + 61_000 }));
        expect(await store.renew({ key, owner: "owner-1", leaseUntil: t0 + 900_000 })).toBe(false);
        expect((await store.get(key))?.leaseUntil).toBe(t0 + 61_000);

        expect(
          await store.complete({ key, owner: "owner-2", outcome: new Uint8Array([3]), now: t0 + 32_000, expiresAt: t0 + 99_000 }),
        ).toBe(true);
        expect(await store.renew({ key, owner: "owner-2", leaseUntil: t0 + 900_000 })).toBe(false);
        expect((await store.get(key))?.status).toBe("completed");
      });

      it("returns false for an absent key", async () => {
        expect(await store.renew({ key, owner: "owner-1", leaseUntil: t0 + 9 })).toBe(false);
      });
    });

    describe("get", () => {
      it("returns undefined for an absent key", async () => {
        expect(await store.get(key)).toBeUndefined();
      });

      it("returns expired records too: the caller judges expiry", async () => {
        await completeRecord(t0 + 1_000);
        const record = await store.get(key);
        expect(record?.status).toBe("completed");
        expect(record?.expiresAt).toBe(t0 + 1_000);
      });
    });

    describe("identity", () => {
      it("keeps the same request ID in another scope or on another method apart", async () => {
        const otherScope: RecordKey = { ...key, scope: "tenant-b" };
        const otherMethod: RecordKey = { ...key, method: "demo.v1.PaymentService/RefundPayment" };
        const emptyScope: RecordKey = { ...key, scope: "" };
        await claimed(claimInput());
        for (const [i, other] of [otherScope, otherMethod, emptyScope].entries()) {
          const result = await store.claim(claimInput({ key: other, owner: `other-${i}`, fingerprint: `fp-other-${i}` }));
          expect(expectClaimed(result, "none")).toMatchObject({ ...other, owner: `other-${i}` });
        }
        expect(
          await store.complete({ key: otherScope, owner: "other-0", outcome: new Uint8Array([7]), now: t0 + 1, expiresAt: t0 + 99 }),
        ).toBe(true);
        expect(await store.release({ key: otherMethod, owner: "other-1" })).toBe(true);
        // The original record saw none of that.
        expect(await store.get(key)).toMatchObject({ status: "in_progress", owner: "owner-1", fingerprint: "fp-1" });
        expect(await store.get(otherScope)).toMatchObject({ status: "completed", outcome: new Uint8Array([7]) });
        expect(await store.get(otherMethod)).toBeUndefined();
        expect(await store.get(emptyScope)).toMatchObject({ owner: "other-2" });
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
      /** Creates one record with the given times and status under request ID `id`. */
      async function seed(id: string, leaseUntil: number, expiresAt: number, completeAt?: number): Promise<RecordKey> {
        const k = { ...key, key: id };
        await claimed(claimInput({ key: k, owner: id, leaseUntil, expiresAt }));
        if (completeAt !== undefined) {
          expect(
            await store.complete({ key: k, owner: id, outcome: new Uint8Array([1]), now: completeAt, expiresAt }),
          ).toBe(true);
        }
        return k;
      }

      it("deletes only expired records whose lease also ended", async () => {
        const now = t0 + 100_000;
        const completedExpired = await seed("completed-expired", t0 + 10, now, t0 + 10);
        const completedLive = await seed("completed-live", t0 + 10, now + 1, t0 + 10);
        const claimExpiredLeaseLive = await seed("claim-expired-lease-live", now + 1, now - 1);
        const claimExpiredLeaseEnded = await seed("claim-expired-lease-ended", now, now - 1);
        const claimLiveLeaseEnded = await seed("claim-live-lease-ended", t0 + 10, now + 1);
        expect(await store.sweep({ now, limit: 100 })).toBe(2);
        expect(await store.get(completedExpired)).toBeUndefined();
        expect(await store.get(claimExpiredLeaseEnded)).toBeUndefined();
        expect(await store.get(completedLive)).toBeDefined();
        expect(await store.get(claimExpiredLeaseLive)).toBeDefined();
        expect(await store.get(claimLiveLeaseEnded)).toBeDefined();
        expect(await store.sweep({ now, limit: 100 })).toBe(0);
      });

      it("deletes at most limit records per call", async () => {
        for (let i = 0; i < 5; i++) await seed(`expired-${i}`, t0 + 10, t0 + 20, t0 + 10);
        const live = await seed("live", t0 + 10, t0 + 1_000_000, t0 + 10);
        const now = t0 + 100;
        expect(await store.sweep({ now, limit: 2 })).toBe(2);
        expect(await store.sweep({ now, limit: 2 })).toBe(2);
        expect(await store.sweep({ now, limit: 2 })).toBe(1);
        expect(await store.sweep({ now, limit: 2 })).toBe(0);
        expect(await store.get(live)).toBeDefined();
      });

      it("judges expiry by the now it is given, not by the wall clock", async () => {
        // Expired long ago by the wall clock, yet live as of the given now.
        const k = await seed("old", t0 + 10, t0 + 1_000, t0 + 10);
        expect(await store.sweep({ now: t0 + 999, limit: 10 })).toBe(0);
        expect(await store.get(k)).toBeDefined();
        const result = await store.claim(claimInput({ key: k, owner: "owner-2", now: t0 + 999 }));
        expect(result.kind).toBe("existing");
      });
    });

    describe("close", () => {
      it("is idempotent, and operations afterwards reject instead of hanging", async () => {
        await claimed(claimInput());
        await store.close();
        await store.close();
        await expect(store.claim(claimInput({ owner: "owner-2" }))).rejects.toThrow();
        await expect(store.get(key)).rejects.toThrow();
      });
    });
  });
}
