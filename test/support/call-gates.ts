import type { Interceptor } from "@connectrpc/connect";

/** A promise a test opens by hand, to hold a handler in flight. */
export interface Gate {
  /** Resolves once `open` was called. */
  readonly opened: Promise<void>;
  open(): void;
}

/** Creates a closed gate. */
export function createGate(): Gate {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

/** Counts calls as they reach the server. */
export interface ArrivalCounter {
  /**
   * Put it before the idempotency interceptor (outermost): it counts a call
   * once the inner interceptors ran up to their first wait, so that a
   * duplicate counted here is already waiting.
   */
  readonly interceptor: Interceptor;
  /** Resolves once `n` calls in total have arrived. */
  until(n: number): Promise<void>;
}

/** Creates an arrival counter. */
export function createArrivalCounter(): ArrivalCounter {
  let arrived = 0;
  const waiting: { n: number; resolve: () => void }[] = [];
  return {
    interceptor: (next) => (req) => {
      const response = next(req);
      arrived += 1;
      for (const w of waiting.filter((w) => w.n <= arrived)) {
        waiting.splice(waiting.indexOf(w), 1);
        w.resolve();
      }
      return response;
    },
    until(n) {
      return n <= arrived ? Promise.resolve() : new Promise((resolve) => waiting.push({ n, resolve }));
    },
  };
}
