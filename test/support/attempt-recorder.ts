import type { Interceptor } from "@connectrpc/connect";

/** One request as it reached the server, before any interceptor decided on it. */
export interface SeenAttempt {
  /** The method's local name, such as `createPayment`. */
  readonly method: string;
  /** The request ID field as sent (`requestId`, or `key` for Opaque); "" when unset. */
  readonly requestId: string;
  /** The Connect-Timeout-Ms header as sent, if any. */
  readonly timeoutMs: string | null;
}

/**
 * A server interceptor that records every unary request it sees. Put it
 * before the idempotency interceptor to see each attempt of a retried call.
 */
export function createAttemptRecorder(): { readonly attempts: SeenAttempt[]; readonly interceptor: Interceptor } {
  const attempts: SeenAttempt[] = [];
  return {
    attempts,
    interceptor: (next) => async (req) => {
      if (!req.stream) {
        const message = req.message as Record<string, unknown>;
        const id = message.requestId ?? message.key ?? "";
        attempts.push({
          method: req.method.localName,
          requestId: typeof id === "string" ? id : "",
          timeoutMs: req.header.get("connect-timeout-ms"),
        });
      }
      return await next(req);
    },
  };
}

/**
 * Random numbers that start with `values` and then stay at 0.99, so that a
 * hostile transport injects the faults the values pick and then none.
 */
export function scriptedRandom(...values: number[]): () => number {
  const queue = [...values];
  return () => queue.shift() ?? 0.99;
}
