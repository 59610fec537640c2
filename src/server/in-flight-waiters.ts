import { waitAtMost } from "./bounded-wait.js";

/**
 * How an execution this process ran ended, as its duplicates learn it:
 * with an outcome (a binary `idempotency.v1.StoredOutcome`, exactly what is
 * or will be stored), or with the key left to the store (released,
 * interrupted, or lost to another execution), where they look next.
 */
export type InFlightResult =
  | {
      readonly kind: "outcome";
      readonly outcome: Uint8Array;
      /** When the first execution under the key claimed it, by the store's clock (ms since the epoch). */
      readonly firstExecutedAt: number;
      /**
       * Until when the outcome is replayed, by the store's clock: the
       * record's `expiresAt`, or an execution's lower estimate of it;
       * undefined when unknown.
       */
      readonly expiresAt: number | undefined;
      /** When the outcome was stored, by the store's clock, when known. */
      readonly completedAt?: number;
    }
  | { readonly kind: "released" };

/** An execution of this process that duplicates can wait for. */
export interface InFlightExecution {
  /** The fingerprint of the request that runs. */
  readonly fingerprint: string;
  /** Until when its claim holds the key even if it never completes, by the store's clock. */
  readonly claimExpiresAt: number;
  /**
   * Resolves with the result, at once when it is known already, or with
   * undefined when `timeoutMs` passes or `signal` aborts first.
   */
  wait(timeoutMs: number, signal: AbortSignal): Promise<InFlightResult | undefined>;
}

/** The handle of the execution that `begin` registered. */
export interface InFlightOwner {
  /**
   * Answers every waiter, present and future, with `outcome`, and keeps the
   * execution registered: while its outcome is not yet written, duplicates
   * reaching this process are answered from memory and never claim.
   */
  hold(outcome: Uint8Array, firstExecutedAt: number, expiresAt: number | undefined): void;
  /**
   * Stops answering from memory, and keeps the execution registered: later
   * duplicates wait for `settle` (and never claim) instead of getting an
   * outcome that another process may have superseded.
   */
  withhold(): void;
  /** Wakes every waiter with the result and forgets the execution. */
  settle(result: InFlightResult): void;
}

/**
 * The executions running in this process, by record identity, so that a
 * duplicate arriving meanwhile waits for the result without polling the
 * store. Duplicates in other processes poll the store instead.
 */
export interface InFlightWaiters {
  /** Registers an execution that claimed `id`, with its claim's `expiresAt`. */
  begin(id: string, fingerprint: string, claimExpiresAt: number): InFlightOwner;
  /** The execution of this process that runs `id`, or whose outcome is not yet written, if any. */
  find(id: string): InFlightExecution | undefined;
  /** How many executions are registered (running, or holding an unwritten outcome). */
  readonly size: number;
}

/** Creates an empty registry of in-flight executions. */
export function createInFlightWaiters(): InFlightWaiters {
  const running = new Map<string, InFlightExecution>();
  return {
    begin(id, fingerprint, claimExpiresAt) {
      let current = createDeferred();
      let settled = false;
      // Methods rather than arrow functions: one execution begins per call
      // (see the note in execution.ts on keepNames).
      const execution: InFlightExecution = {
        fingerprint,
        claimExpiresAt,
        wait(timeoutMs, signal) {
          return waitAtMost(current.promise, timeoutMs, signal);
        },
      };
      running.set(id, execution);
      return {
        hold(outcome, firstExecutedAt, expiresAt) {
          if (!settled) current.resolve({ kind: "outcome", outcome, firstExecutedAt, expiresAt });
        },
        withhold() {
          if (!settled && current.resolved) current = createDeferred();
        },
        settle(value) {
          settled = true;
          // A later execution of the same key may have replaced this one.
          if (running.get(id) === execution) {
            running.delete(id);
          }
          current.resolve(value);
        },
      };
    },
    find: (id) => running.get(id),
    get size() {
      return running.size;
    },
  };
}

interface Deferred {
  readonly promise: Promise<InFlightResult>;
  readonly resolved: boolean;
  resolve(result: InFlightResult): void;
}

function createDeferred(): Deferred {
  let resolve!: (result: InFlightResult) => void;
  const promise = new Promise<InFlightResult>((r) => (resolve = r));
  const deferred = {
    promise,
    resolved: false,
    resolve(result: InFlightResult) {
      deferred.resolved = true;
      resolve(result);
    },
  };
  return deferred;
}
