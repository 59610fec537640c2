import { Code, ConnectError, type Interceptor, type Transport } from "@connectrpc/connect";
import { abortableSleep } from "../client/abortable-sleep.js";

/**
 * A fault that the hostile transport injected into one unary call:
 *
 * - `drop`: the server ran the call and its response was lost; the client
 *   sees Unavailable.
 * - `reset-before`: the connection was reset before the request reached the
 *   server; the client sees what connect-node reports for a TCP reset
 *   (Aborted, caused by ECONNRESET).
 * - `reset-after`: the same reset, after the server ran the call.
 * - `delay`: the response arrived `delayMs` late; when the call's timeout is
 *   shorter, the client sees DeadlineExceeded although the server ran it.
 */
export type HostileFault = "drop" | "reset-before" | "reset-after" | "delay";

/** Options of `createHostileTransport` and `createHostileInterceptor`. Rates are shares of calls in [0, 1]. */
export interface HostileNetworkOptions {
  /** Share of calls whose response is lost after the server ran them. Default 0. */
  readonly dropRate?: number;
  /**
   * Share of calls whose connection is reset; half of them before the server
   * sees the request, half after it ran the call. Default 0.
   */
  readonly resetRate?: number;
  /** Share of calls whose response is held back by `delayMs`. Default 0. */
  readonly delayRate?: number;
  /** How long a delayed response is held back, in milliseconds. Default 0. */
  readonly delayMs?: number;
  /**
   * Random numbers in [0, 1) that decide the faults. Pass
   * `createSeededRandom(seed)` for a run that can be repeated. Default `Math.random`.
   */
  readonly random?: () => number;
  /** Waits for a delay; must reject when `signal` aborts. Default a timer. */
  readonly sleep?: (ms: number, signal: AbortSignal | undefined) => Promise<void>;
  /** Called for every injected fault, for counts in a demo or test. */
  readonly onFault?: (fault: HostileFault, method: string) => void;
}

/**
 * Wraps a client transport in an unreliable network for unary calls, to show
 * and test that retries with request IDs neither lose nor duplicate effects.
 * Faults happen around real calls of `inner`, so a dropped response or a
 * reset after the fact means the server really ran the call. Streaming calls
 * pass through.
 *
 * ```ts
 * const transport = createHostileTransport(createConnectTransport({ baseUrl, httpVersion: "2" }), {
 *   dropRate: 0.1,
 *   resetRate: 0.1,
 *   random: createSeededRandom(42),
 * });
 * ```
 *
 * A retry interceptor on `inner` retries below the faults and never sees
 * them; to exercise interceptors, put `createHostileInterceptor` last in the
 * transport's interceptors instead.
 */
export function createHostileTransport(inner: Transport, options: HostileNetworkOptions): Transport {
  const network = createHostileNetwork(options);
  return {
    unary(method, signal, timeoutMs, header, input, contextValues) {
      return network.call(method.name, signal, timeoutMs, () =>
        inner.unary(method, signal, timeoutMs, header, input, contextValues),
      );
    },
    stream(method, signal, timeoutMs, header, input, contextValues) {
      return inner.stream(method, signal, timeoutMs, header, input, contextValues);
    },
  };
}

/**
 * The same unreliable network as `createHostileTransport`, as a client
 * interceptor. Put it last in a transport's interceptors, so that retry
 * interceptors before it see the faults. Delays end early with the call's
 * signal, which Connect aborts at the call's deadline.
 */
export function createHostileInterceptor(options: HostileNetworkOptions): Interceptor {
  const network = createHostileNetwork(options);
  return (next) => (req) =>
    req.stream ? next(req) : network.call(req.method.name, req.signal, undefined, () => next(req));
}

function createHostileNetwork(options: HostileNetworkOptions) {
  const random = options.random ?? Math.random;
  const sleep = options.sleep ?? abortableSleep;
  const dropRate = options.dropRate ?? 0;
  const resetRate = options.resetRate ?? 0;
  const delayRate = options.delayRate ?? 0;
  const delayMs = options.delayMs ?? 0;
  const pickFault = (): HostileFault | undefined => {
    const r = random();
    if (r < dropRate) {
      return "drop";
    }
    if (r < dropRate + resetRate) {
      return random() < 0.5 ? "reset-before" : "reset-after";
    }
    return r < dropRate + resetRate + delayRate ? "delay" : undefined;
  };
  return {
    async call<T>(
      methodName: string,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      run: () => Promise<T>,
    ): Promise<T> {
      const fault = pickFault();
      if (fault === undefined) {
        return await run();
      }
      options.onFault?.(fault, methodName);
      if (fault === "reset-before") {
        throw connectionReset();
      }
      const response = await run();
      switch (fault) {
        case "drop":
          throw new ConnectError("response lost after the server ran the call (injected)", Code.Unavailable);
        case "reset-after":
          throw connectionReset();
        case "delay": {
          const late = timeoutMs !== undefined && timeoutMs > 0 && timeoutMs < delayMs;
          try {
            await sleep(late ? timeoutMs : delayMs, signal);
          } catch (reason) {
            throw ConnectError.from(reason, Code.Canceled);
          }
          if (late) {
            throw new ConnectError("the operation timed out (injected delay)", Code.DeadlineExceeded);
          }
          return response;
        }
      }
    },
  };
}

// The error connect-node reports when a peer resets the TCP connection.
function connectionReset(): ConnectError {
  const cause = Object.assign(new Error("read ECONNRESET (injected)"), { code: "ECONNRESET", syscall: "read" });
  return new ConnectError("read ECONNRESET (injected)", Code.Aborted, undefined, undefined, cause);
}
