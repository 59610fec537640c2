/**
 * The faults the demo injects, one row each in its report:
 *
 * - `drop`: a response lost after the server processed the call;
 * - `reset`: a connection reset, before or after the server ran the call;
 * - `delay`: a response that arrived late;
 * - `bank_timeout`: the bank charged, then its answer was lost, so the
 *   payment service saw UNAVAILABLE or DEADLINE_EXCEEDED (an indefinite error);
 * - `deadline`: the client's own deadline expired while the handler ran;
 *   the client then asked again with the same request ID;
 * - `crash`: a server process killed with SIGKILL;
 * - `stall`: the payments store locked by another connection for longer
 *   than the lease.
 */
export type FaultClass = "drop" | "reset" | "delay" | "bank_timeout" | "deadline" | "crash" | "stall";

/** Every fault class, in the order of the report. */
export const faultClasses: readonly FaultClass[] = [
  "drop",
  "reset",
  "delay",
  "bank_timeout",
  "deadline",
  "crash",
  "stall",
];

/** What the demo injected, and which requests each kind of fault hit. */
export interface FaultLog {
  /** Faults injected, per class. */
  readonly injected: Record<FaultClass, number>;
  /** The request IDs each class hit. */
  readonly hit: Record<FaultClass, Set<string>>;
}

/** An empty fault log. */
export function createFaultLog(): FaultLog {
  const perClass = <T>(value: () => T) =>
    Object.fromEntries(faultClasses.map((fault) => [fault, value()])) as Record<FaultClass, T>;
  return { injected: perClass(() => 0), hit: perClass(() => new Set<string>()) };
}

/** Counts one injected fault of `fault`, and the requests it hit. */
export function recordFault(log: FaultLog, fault: FaultClass, requestIds: Iterable<string>): void {
  log.injected[fault]++;
  for (const requestId of requestIds) {
    if (requestId !== "") {
      log.hit[fault].add(requestId);
    }
  }
}
