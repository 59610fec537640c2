import type { Transport } from "@connectrpc/connect";

/** A transport that spreads attempts across servers, from `createSpreadTransport`. */
export interface SpreadTransport extends Transport {
  /** The request IDs of the unary attempts in flight at server `index` now. */
  inFlight(index: number): string[];
}

/**
 * Sends each attempt to one of `servers`, picked by `random`: a load
 * balancer in front of several server processes. It picks per attempt, not
 * per call, so a retry often reaches another process than the attempt it
 * repeats, and waits and takeovers cross processes. It remembers which
 * request IDs are in flight where, for the demo to name the calls a crash
 * cut off.
 */
export function createSpreadTransport(servers: readonly Transport[], random: () => number): SpreadTransport {
  const inFlight = servers.map(() => new Map<string, number>());
  const pick = () => Math.min(servers.length - 1, Math.floor(random() * servers.length));
  return {
    async unary(method, signal, timeoutMs, header, input, contextValues) {
      const index = pick();
      const requestId = (input as { requestId?: unknown }).requestId;
      const calls = inFlight[index]!;
      const key = typeof requestId === "string" ? requestId : "";
      calls.set(key, (calls.get(key) ?? 0) + 1);
      try {
        return await servers[index]!.unary(method, signal, timeoutMs, header, input, contextValues);
      } finally {
        const left = (calls.get(key) ?? 1) - 1;
        if (left === 0) {
          calls.delete(key);
        } else {
          calls.set(key, left);
        }
      }
    },
    stream(method, signal, timeoutMs, header, input, contextValues) {
      return servers[pick()]!.stream(method, signal, timeoutMs, header, input, contextValues);
    },
    inFlight: (index) => [...(inFlight[index]?.keys() ?? [])].filter((key) => key !== ""),
  };
}
