/**
 * An AbortController that is only built when its signal is read or it is
 * aborted: most executions never lose their claim and most handlers never
 * look at the signal, and an AbortSignal (an EventTarget) is one of the
 * larger allocations of a call.
 */
export interface LazyAbortController {
  /** The signal, built on first use; aborted already when `abort` came first. */
  readonly signal: AbortSignal;
  /** Aborts the signal with `reason`, building it if nobody has read it yet. */
  abort(reason: unknown): void;
}

/** Creates a controller whose AbortController is built on first use. */
export function createLazyAbortController(): LazyAbortController {
  return new Lazy();
}

// A class rather than an object literal: a literal with a getter is built
// through a slow runtime path every time (measured: about 1 us against 25 ns
// for a class instance), and one is made per call.
class Lazy implements LazyAbortController {
  #controller: AbortController | undefined = undefined;

  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    return this.#controller.signal;
  }

  abort(reason: unknown): void {
    this.#controller ??= new AbortController();
    this.#controller.abort(reason);
  }
}
