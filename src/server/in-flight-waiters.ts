import { waitAtMost } from "./bounded-wait.js";

/**
 * How an execution this process ran ended, as its duplicates learn it:
 * with an outcome (a binary `idempotency.v1.StoredOutcome`, exactly what is
 * stored), or with the key released for a retry.
 */
export type InFlightResult =
  | { readonly kind: "outcome"; readonly outcome: Uint8Array }
  | { readonly kind: "released" };

/** An execution of this process that duplicates can wait for. */
export interface InFlightExecution {
  /** The fingerprint of the request that runs. */
  readonly fingerprint: string;
  /**
   * Resolves with the result, or undefined when `timeoutMs` passes or
   * `signal` aborts first.
   */
  wait(timeoutMs: number, signal: AbortSignal): Promise<InFlightResult | undefined>;
}

/** The handle of the execution that `begin` registered. */
export interface InFlightOwner {
  /** Wakes every waiter with the result and forgets the execution. */
  settle(result: InFlightResult): void;
}

/**
 * The executions running in this process, by record identity, so that a
 * duplicate arriving meanwhile waits for the result without polling the
 * store. Duplicates in other processes poll the store instead.
 */
export interface InFlightWaiters {
  /** Registers an execution that claimed `id`. */
  begin(id: string, fingerprint: string): InFlightOwner;
  /** The execution of this process that runs `id`, if any. */
  find(id: string): InFlightExecution | undefined;
}

/** Creates an empty registry of in-flight executions. */
export function createInFlightWaiters(): InFlightWaiters {
  const running = new Map<string, InFlightExecution>();
  return {
    begin(id, fingerprint) {
      let resolve!: (result: InFlightResult) => void;
      const result = new Promise<InFlightResult>((r) => (resolve = r));
      const execution: InFlightExecution = {
        fingerprint,
        wait: (timeoutMs, signal) => waitAtMost(result, timeoutMs, signal),
      };
      running.set(id, execution);
      return {
        settle(value) {
          // A later execution of the same key may have replaced this one.
          if (running.get(id) === execution) {
            running.delete(id);
          }
          resolve(value);
        },
      };
    },
    find: (id) => running.get(id),
  };
}
