import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type {
  AtomicCompletion,
  AtomicIdempotencyStore,
  TransactionMode,
} from "../../src/store/atomic-idempotency-store.js";
import type { ClaimInput, RecordKey } from "../../src/store/idempotency-store.js";
import { claimInput, conformanceKey, graceMs, leaseMs } from "../support/conformance-claim.js";

/** What an atomic conformance factory hands the suite: a fresh store and its application table. */
export interface AtomicConformanceStore<Tx> {
  readonly store: AtomicIdempotencyStore<Tx, TransactionMode>;
  /** Moves the store's own clock forward by `ms`, as `ConformanceStore.travel` does. */
  travel(ms: number): Promise<void>;
  /** Writes one row `id` into the application's own table through the transaction handle. */
  insertRow(tx: Tx, id: string): void | Promise<void>;
  /** Counts committed rows `id`, seen from outside the store's transactions. */
  countRows(id: string): Promise<number>;
  /** Removes what the store left behind; runs after the suite closed the store. */
  cleanup(): Promise<void>;
}

/**
 * Holds an `AtomicIdempotencyStore` to its JSDoc: the application's writes
 * commit together with the completion or not at all, only the owner and
 * attempt of a running claim complete or record phases, and phases live and
 * die with their record (a takeover, after a dead lease or an interrupt,
 * keeps them). `factory` returns a new empty store for every test,
 * without background sweeping.
 */
export function describeAtomicStoreConformance<Tx>(
  name: string,
  factory: () => Promise<AtomicConformanceStore<Tx>>,
): void {
  describe(`AtomicIdempotencyStore conformance: ${name}`, () => {
    let store: AtomicIdempotencyStore<Tx, TransactionMode>;
    let subject: AtomicConformanceStore<Tx>;

    beforeEach(async () => {
      subject = await factory();
      store = subject.store;
    });

    afterEach(async () => {
      await store.close();
      await subject.cleanup();
    });

    const key = conformanceKey;
    const travel = (ms: number) => subject.travel(ms);
    const outcome = new Uint8Array([10, 2, 8, 1]);

    async function claim(overrides: Partial<ClaimInput> = {}): Promise<void> {
      expect((await store.claim(claimInput(overrides))).kind).toBe("claimed");
    }

    /** Work that writes row `id`, then runs `then`, in the store's own style (sync or async). */
    function writing<T>(id: string, then: () => T): (tx: Tx) => T | Promise<T> {
      if (store.transactionMode === "sync") {
        return (tx) => {
          void subject.insertRow(tx, id);
          return then();
        };
      }
      return async (tx) => {
        await subject.insertRow(tx, id);
        return then();
      };
    }

    /** Work that writes row-1 and answers "x", calling `count` each time it runs. */
    function countedWork(count: () => void) {
      return writing("row-1", () => {
        count();
        return { value: "x", outcome };
      });
    }

    function completeWithin<T>(
      owner: string,
      work: (tx: Tx) => AtomicCompletion<T> | Promise<AtomicCompletion<T>>,
      attempt = 1,
    ) {
      return store.completeWithin<T>({ key, owner, attempt, retentionMs: 5_000 }, work as never);
    }

    function complete(owner = "owner-1", attempt = 1): Promise<boolean> {
      return store.complete({ key, owner, attempt, outcome, retentionMs: 5_000 });
    }

    function recordPhase(name: string, result: Uint8Array, owner = "owner-1", attempt = 1, k: RecordKey = key) {
      return store.recordPhase({ key: k, owner, attempt, name, result });
    }

    describe("completeWithin", () => {
      it("commits the work's writes and the completion together", async () => {
        await claim();
        const result = await completeWithin(
          "owner-1",
          writing("row-1", () => ({ value: "answer", outcome })),
        );
        expect(result).toEqual({ kind: "completed", value: "answer" });
        expect(await subject.countRows("row-1")).toBe(1);
        const record = await store.get(key);
        expect(record?.status).toBe("completed");
        expect(record?.outcome).toEqual(outcome);
        expect(record?.expiresAt).toBe(record!.updatedAt + 5_000);
        expect(record?.updatedAt).toBeLessThanOrEqual(record!.readAt);
      });

      it("keeps a tombstone period and the work's outcome code, as a completion does", async () => {
        await claim();
        const result = await store.completeWithin<string>(
          { key, owner: "owner-1", attempt: 1, retentionMs: 5_000, tombstoneMs: 60_000 },
          writing("row-1", () => ({ value: "answer", outcome, outcomeCode: 8 })) as never,
        );
        expect(result).toEqual({ kind: "completed", value: "answer" });
        const record = await store.get(key);
        expect(record).toMatchObject({ status: "completed", outcomeCode: 8, replayUntil: record!.updatedAt + 5_000 });
        expect(record?.expiresAt).toBe(record!.updatedAt + 65_000);
      });

      it("rolls back the writes and keeps the claim when the work throws", async () => {
        await claim();
        const failure = new Error("handler failed after writing");
        await expect(
          completeWithin(
            "owner-1",
            writing("row-1", () => {
              throw failure;
            }),
          ),
        ).rejects.toBe(failure);
        expect(await subject.countRows("row-1")).toBe(0);
        const record = await store.get(key);
        expect(record?.status).toBe("in_progress");
        expect(record?.owner).toBe("owner-1");
        expect(record?.outcome).toBeUndefined();
        // The claim is intact: its owner can still complete it.
        expect(await complete()).toBe(true);
      });

      it("runs nothing when another owner holds the claim", async () => {
        await claim();
        let ran = false;
        const result = await completeWithin(
          "owner-2",
          writing("row-1", () => {
            ran = true;
            return { value: "x", outcome };
          }),
        );
        expect(result).toEqual({ kind: "not_owner" });
        expect(ran).toBe(false);
        expect(await subject.countRows("row-1")).toBe(0);
        expect((await store.get(key))?.status).toBe("in_progress");
      });

      it("runs nothing for a stale attempt, even under the same owner token", async () => {
        await claim();
        expect(await store.interrupt({ key, owner: "owner-1", attempt: 1 })).toBe(true);
        // Interrupted: no completion of that attempt any more.
        let runs = 0;
        const work = countedWork(() => runs++);
        expect(await completeWithin("owner-1", work)).toEqual({ kind: "not_owner" });
        await claim();
        expect(await completeWithin("owner-1", work, 1)).toEqual({ kind: "not_owner" });
        expect(runs).toBe(0);
        expect(await completeWithin("owner-1", work, 2)).toEqual({ kind: "completed", value: "x" });
        expect(runs).toBe(1);
        expect(await subject.countRows("row-1")).toBe(1);
      });

      it("runs nothing when the record is completed (even by this execution) or absent", async () => {
        let runs = 0;
        const work = countedWork(() => runs++);
        expect(await completeWithin("owner-1", work)).toEqual({ kind: "not_owner" });
        await claim();
        expect(await complete()).toBe(true);
        // A retried completeWithin whose first try committed: the work must not run twice.
        expect(await completeWithin("owner-1", work)).toEqual({ kind: "not_owner" });
        expect(runs).toBe(0);
        expect(await subject.countRows("row-1")).toBe(0);
      });

      it("completes one of many concurrent claims' keys each, with their own rows", async () => {
        const keys = Array.from({ length: 20 }, (_, i) => ({ ...key, key: `k-${i}` }));
        for (const k of keys) {
          expect((await store.claim(claimInput({ key: k }))).kind).toBe("claimed");
        }
        const results = await Promise.all(
          keys.map((k, i) =>
            store
              .completeWithin(
                { key: k, owner: "owner-1", attempt: 1, retentionMs: 5_000 },
                writing(`row-${i}`, () => {
                  if (i % 4 === 3) {
                    throw new Error(`work ${i} failed`);
                  }
                  return { value: i, outcome };
                }) as never,
              )
              .then(
                (result) => result,
                (error: unknown) => error,
              ),
          ),
        );
        for (const [i, k] of keys.entries()) {
          const failed = i % 4 === 3;
          expect(results[i]).toEqual(failed ? new Error(`work ${i} failed`) : { kind: "completed", value: i });
          expect(await subject.countRows(`row-${i}`)).toBe(failed ? 0 : 1);
          expect((await store.get(k))?.status).toBe(failed ? "in_progress" : "completed");
        }
      });
    });

    describe("transact", () => {
      it("commits the work's writes without touching any record", async () => {
        expect(await store.transact(writing("row-1", () => "done") as never)).toBe("done");
        expect(await subject.countRows("row-1")).toBe(1);
        expect(await store.get(key)).toBeUndefined();
      });

      it("rolls back when the work throws", async () => {
        const failure = new Error("nope");
        await expect(
          store.transact(
            writing("row-1", () => {
              throw failure;
            }) as never,
          ),
        ).rejects.toBe(failure);
        expect(await subject.countRows("row-1")).toBe(0);
      });
    });

    describe("phases", () => {
      const first = new Uint8Array([1, 2, 3]);
      const second = new Uint8Array([4, 5]);

      it("records a result under the owner's claim and reads it back", async () => {
        await claim();
        expect(await store.getPhase({ key, name: "charge" })).toBeUndefined();
        expect(await recordPhase("charge", first)).toBe(true);
        expect(await store.getPhase({ key, name: "charge" })).toEqual(first);
        expect(await store.getPhase({ key, name: "notify" })).toBeUndefined();
        expect(await store.getPhase({ key: { ...key, key: "k-2" }, name: "charge" })).toBeUndefined();
        expect(await store.getPhase({ key: { ...key, scope: "tenant-b" }, name: "charge" })).toBeUndefined();
      });

      it("replaces a result recorded under the same name", async () => {
        await claim();
        await recordPhase("charge", first);
        expect(await recordPhase("charge", second)).toBe(true);
        expect(await store.getPhase({ key, name: "charge" })).toEqual(second);
      });

      it("records nothing for another owner or attempt, an interrupted, completed or absent record", async () => {
        expect(await recordPhase("charge", first)).toBe(false);
        await claim();
        expect(await recordPhase("charge", first, "owner-2")).toBe(false);
        expect(await recordPhase("charge", first, "owner-1", 2)).toBe(false);
        expect(await store.getPhase({ key, name: "charge" })).toBeUndefined();
        expect(await store.interrupt({ key, owner: "owner-1", attempt: 1 })).toBe(true);
        expect(await recordPhase("charge", first)).toBe(false);
        await claim({ owner: "owner-2" });
        expect(await complete("owner-2", 2)).toBe(true);
        expect(await recordPhase("charge", first, "owner-2", 2)).toBe(false);
        expect(await store.getPhase({ key, name: "charge" })).toBeUndefined();
      });

      it("keeps phases across a takeover of a dead claim, so that the new owner resumes", async () => {
        await claim();
        await recordPhase("charge", first);
        await travel(leaseMs + graceMs);
        const takeover = await store.claim(claimInput({ owner: "owner-2" }));
        expect(takeover.kind === "claimed" && takeover.replaced).toBe("takeover");
        expect(takeover.record.attempt).toBe(2);
        expect(await store.getPhase({ key, name: "charge" })).toEqual(first);
        // The old owner can no longer record; the new one can.
        expect(await recordPhase("notify", second)).toBe(false);
        expect(await recordPhase("notify", second, "owner-2", 2)).toBe(true);
      });

      it("keeps phases when an interrupted claim is taken over at once, and lets another payload touch none", async () => {
        await claim();
        await recordPhase("charge", first);
        expect(await store.interrupt({ key, owner: "owner-1", attempt: 1 })).toBe(true);
        // Interrupted: the record and its phases stay.
        expect(await store.getPhase({ key, name: "charge" })).toEqual(first);
        const other = await store.claim(claimInput({ owner: "owner-3", fingerprint: "fp-2" }));
        expect(other.kind).toBe("existing");
        const takeover = await store.claim(claimInput({ owner: "owner-2" }));
        expect(takeover.kind === "claimed" && takeover.replaced).toBe("takeover");
        expect(takeover.record.attempt).toBe(2);
        expect(await store.getPhase({ key, name: "charge" })).toEqual(first);
        expect(await recordPhase("notify", second, "owner-2", 2)).toBe(true);
        const result = await completeWithin(
          "owner-2",
          writing("row-1", () => ({ value: "resumed", outcome })),
          2,
        );
        expect(result).toEqual({ kind: "completed", value: "resumed" });
        expect(await store.getPhase({ key, name: "notify" })).toEqual(second);
      });

      it("deletes a record's phases when it is released, and no other record's", async () => {
        const other: RecordKey = { ...key, key: "k-2" };
        await claim();
        await claim({ key: other });
        await recordPhase("charge", first);
        await recordPhase("charge", second, "owner-1", 1, other);
        expect(await store.release({ key, owner: "owner-1", attempt: 1 })).toBe(true);
        expect(await store.getPhase({ key, name: "charge" })).toBeUndefined();
        expect(await store.getPhase({ key: other, name: "charge" })).toEqual(second);
        // A new claim of the released key starts from scratch.
        await claim({ owner: "owner-3" });
        expect(await store.getPhase({ key, name: "charge" })).toBeUndefined();
      });

      it("deletes a record's phases when the sweeper deletes the record", async () => {
        await claim({ leaseMs: 1_000, expiresInMs: 2_000 });
        await recordPhase("charge", first);
        await travel(2_000);
        expect(await store.sweep({ limit: 10 })).toBe(1);
        expect(await store.getPhase({ key, name: "charge" })).toBeUndefined();
      });

      it("deletes the phases of an expired record that a new claim replaces, whatever its payload", async () => {
        await claim({ leaseMs: 1_000, expiresInMs: 2_000 });
        await recordPhase("charge", first);
        await travel(2_000);
        const result = await store.claim(claimInput({ owner: "owner-2" }));
        expect(result.kind === "claimed" && result.replaced).toBe("expired");
        expect(result.record.attempt).toBe(1);
        expect(await store.getPhase({ key, name: "charge" })).toBeUndefined();
      });

      it("deletes the phases of a completed record that expired and is claimed again", async () => {
        await claim();
        await recordPhase("charge", first);
        expect(await store.complete({ key, owner: "owner-1", attempt: 1, outcome, retentionMs: 1 })).toBe(true);
        // Completion keeps them: they go with the record.
        expect(await store.getPhase({ key, name: "charge" })).toEqual(first);
        await travel(1);
        const result = await store.claim(claimInput({ owner: "owner-2" }));
        expect(result.kind === "claimed" && result.replaced).toBe("expired");
        expect(await store.getPhase({ key, name: "charge" })).toBeUndefined();
      });
    });
  });
}
