/**
 * Resolves with the promise's value, or with undefined once `timeoutMs` has
 * passed or `signal` aborted, whichever comes first. Never rejects on
 * timeout or abort, and leaves no timer or listener behind.
 */
export function waitAtMost<T>(promise: Promise<T>, timeoutMs: number, signal: AbortSignal): Promise<T | undefined> {
  if (timeoutMs <= 0 || signal.aborted) {
    return Promise.resolve(undefined);
  }
  return new Promise<T | undefined>((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    };
    const onAbort = () => {
      cleanup();
      resolve(undefined);
    };
    const timer = setTimeout(onAbort, timeoutMs);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        cleanup();
        resolve(value);
      },
      (error: unknown) => {
        cleanup();
        reject(error);
      },
    );
  });
}

/** Waits `ms` milliseconds, or less when `signal` aborts. Never rejects. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return waitAtMost(new Promise<void>(() => {}), ms, signal).then(() => undefined);
}
