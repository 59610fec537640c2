import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type {
  AtomicCompletion,
  AtomicIdempotencyStore,
  TransactionMode,
} from "../../src/store/atomic-idempotency-store.js";
import type { ClaimInput, RecordKey } from "../../src/store/idempotency-store.js";
import { claimInput, conformanceKey, t0 } from "../support/conformance-claim.js";

/** What an atomic conformance factory hands the suite: a fresh store and its application table. */
export interface AtomicConformanceStore<Tx> {
  readonly store: AtomicIdempotencyStore<Tx, TransactionMode>;
  /** Writes one row `id` into the application's own table through the transaction handle. */
  insertRow(tx: Tx, id: string): void | Promise<void>;
  /** Counts committed rows `id`, seen from outside the store's transactions. */
  countRows(id: string): Promise<number>;
  /** Removes what the store left behind; runs after the suite closed the store. */
  cleanup(): Promise<void>;
}

/**
 * Holds an `AtomicIdempotencyStore` to its JSDoc: the application's writes
 * commit together with the completion or not at all, only the owner of an
 * in-progress claim completes or records phases, and phases live and die
 * with their record. `factory` returns a new empty store for every test,
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

    function completeWithin<T>(owner: string, work: (tx: Tx) => AtomicCompletion<T> | Promise<AtomicCompletion<T>>) {
      return store.completeWithin<T>({ key, owner, now: t0 + 100, expiresAt: t0 + 5_000 }, work as never);
    }

    describe("completeWithin", () => {
      it("commits the work's writes and the completion together", async () => {
        await claim();
        const result = await completeWithin("owner-1", writing("row-1", () => ({ value: "answer", outcome })));
        expect(result).toEqual({ kind: "completed", value: "answer" });
        expect(await subject.countRows("row-1")).toBe(1);
        const record = await store.get(key);
        expect(record?.status).toBe("completed");
        expect(record?.outcome).toEqual(outcome);
        expect(record?.expiresAt).toBe(t0 + 5_000);
        expect(record?.updatedAt).toBe(t0 + 100);
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
        expect(await store.complete({ key, owner: "owner-1", outcome, now: t0 + 200, expiresAt: t0 + 5_000 })).toBe(
          true,
        );
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

      it("runs nothing when the record is completed or absent", async () => {
        let runs = 0;
        const work = writing("row-1", () => {
          runs++;
          return { value: "x", outcome };
        });
        expect(await completeWithin("owner-1", work)).toEqual({ kind: "not_owner" });
        await claim();
        expect(await store.complete({ key, owner: "owner-1", outcome, now: t0 + 10, expiresAt: t0 + 5_000 })).toBe(true);
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
            store.completeWithin(
              { key: k, owner: "owner-1", now: t0 + 1, expiresAt: t0 + 5_000 },
              writing(`row-${i}`, () => {
                if (i % 4 === 3) {
                  throw new Error(`work ${i} failed`);
                }
                return { value: i, outcome };
              }) as never,
            ).then(
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
        expect(await store.recordPhase({ key, owner: "owner-1", name: "charge", result: first, now: t0 + 1 })).toBe(true);
        expect(await store.getPhase({ key, name: "charge" })).toEqual(first);
        expect(await store.getPhase({ key, name: "notify" })).toBeUndefined();
        expect(await store.getPhase({ key: { ...key, key: "k-2" }, name: "charge" })).toBeUndefined();
        expect(await store.getPhase({ key: { ...key, scope: "tenant-b" }, name: "charge" })).toBeUndefined();
      });

      it("replaces a result recorded under the same name", async () => {
        await claim();
        await store.recordPhase({ key, owner: "owner-1", name: "charge", result: first, now: t0 + 1 });
        expect(await store.recordPhase({ key, owner: "owner-1", name: "charge", result: second, now: t0 + 2 })).toBe(
          true,
        );
        expect(await store.getPhase({ key, name: "charge" })).toEqual(second);
      });

      it("records nothing for another owner, a completed record or an absent one", async () => {
        expect(await store.recordPhase({ key, owner: "owner-1", name: "charge", result: first, now: t0 })).toBe(false);
        await claim();
        expect(await store.recordPhase({ key, owner: "owner-2", name: "charge", result: first, now: t0 })).toBe(false);
        expect(await store.getPhase({ key, name: "charge" })).toBeUndefined();
        await store.complete({ key, owner: "owner-1", outcome, now: t0 + 1, expiresAt: t0 + 5_000 });
        expect(await store.recordPhase({ key, owner: "owner-1", name: "charge", result: first, now: t0 + 2 })).toBe(
          false,
        );
        expect(await store.getPhase({ key, name: "charge" })).toBeUndefined();
      });

      it("keeps phases across a takeover, so that the new owner resumes", async () => {
        await claim();
        await store.recordPhase({ key, owner: "owner-1", name: "charge", result: first, now: t0 + 1 });
        const takeover = await store.claim(claimInput({ owner: "owner-2", now: t0 + 30_000, leaseUntil: t0 + 60_000 }));
        expect(takeover.kind === "claimed" && takeover.replaced).toBe("takeover");
        expect(await store.getPhase({ key, name: "charge" })).toEqual(first);
        // The old owner can no longer record; the new one can.
        expect(await store.recordPhase({ key, owner: "owner-1", name: "notify", result: second, now: t0 + 30_001 })).toBe(
          false,
        );
        expect(await store.recordPhase({ key, owner: "owner-2", name: "notify", result: second, now: t0 + 30_001 })).toBe(
          true,
        );
      });

      it("deletes a record's phases when it is released, and no other record's", async () => {
        const other: RecordKey = { ...key, key: "k-2" };
        await claim();
        await claim({ key: other });
        await store.recordPhase({ key, owner: "owner-1", name: "charge", result: first, now: t0 + 1 });
        await store.recordPhase({ key: other, owner: "owner-1", name: "charge", result: second, now: t0 + 1 });
        expect(await store.release({ key, owner: "owner-1" })).toBe(true);
        expect(await store.getPhase({ key, name: "charge" })).toBeUndefined();
        expect(await store.getPhase({ key: other, name: "charge" })).toEqual(second);
        // A new claim of the released key starts from scratch.
        await claim({ owner: "owner-3", now: t0 + 2 });
        expect(await store.getPhase({ key, name: "charge" })).toBeUndefined();
      });

      it("deletes a record's phases when the sweeper deletes the record", async () => {
        await claim({ leaseUntil: t0 + 1_000, expiresAt: t0 + 2_000 });
        await store.recordPhase({ key, owner: "owner-1", name: "charge", result: first, now: t0 + 1 });
        expect(await store.sweep({ now: t0 + 2_000, limit: 10 })).toBe(1);
        expect(await store.getPhase({ key, name: "charge" })).toBeUndefined();
      });

      it("deletes the phases of an expired record that a new claim replaces", async () => {
        await claim({ leaseUntil: t0 + 1_000, expiresAt: t0 + 2_000 });
        await store.recordPhase({ key, owner: "owner-1", name: "charge", result: first, now: t0 + 1 });
        const result = await store.claim(claimInput({ owner: "owner-2", fingerprint: "fp-2", now: t0 + 2_000 }));
        expect(result.kind === "claimed" && result.replaced).toBe("expired");
        expect(await store.getPhase({ key, name: "charge" })).toBeUndefined();
      });

      it("deletes the phases of a completed record that expired and is claimed again", async () => {
        await claim();
        await store.recordPhase({ key, owner: "owner-1", name: "charge", result: first, now: t0 + 1 });
        await store.complete({ key, owner: "owner-1", outcome, now: t0 + 2, expiresAt: t0 + 3 });
        // Completion keeps them: they go with the record.
        expect(await store.getPhase({ key, name: "charge" })).toEqual(first);
        const result = await store.claim(claimInput({ owner: "owner-2", now: t0 + 3 }));
        expect(result.kind === "claimed" && result.replaced).toBe("expired");
        expect(await store.getPhase({ key, name: "charge" })).toBeUndefined();
      });
    });
  });
}
