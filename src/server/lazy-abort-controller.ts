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
  let controller: AbortController | undefined;
  return {
    get signal() {
      controller ??= new AbortController();
      return controller.signal;
    },
    abort(reason) {
      controller ??= new AbortController();
      controller.abort(reason);
    },
  };
}
