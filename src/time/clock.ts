/**
 * A source of time in milliseconds: what every `clock` option takes (the
 * SQLite store and its admin view, the retry policy, the pending request
 * IDs, the replay cache).
 *
 * An object with `now()` rather than a bare function, because `Date` and
 * `performance` are such objects: `clock: Date` (epoch milliseconds) and
 * `clock: performance` (monotonic) pass as they are, a test clock that also
 * moves (`advance`) is the same object, and the shape can grow without
 * another option. `now` is always called as a method, so a class instance
 * works too.
 */
export interface Clock {
  /** The current time in milliseconds. */
  now(): number;
}

/**
 * Reads the `clock` option of `options`, `fallback` when absent. Throws,
 * with `prefix` and the fix, for the shapes before 0.2: a `now` option, or a
 * bare function as `clock`.
 */
export function resolveClock(prefix: string, options: { readonly clock?: Clock } | undefined, fallback: Clock): Clock {
  if (options !== undefined && "now" in options) {
    throw new Error(`${prefix}: option "now" was renamed "clock" in 0.2, an object with now(), such as Date`);
  }
  const clock: unknown = options?.clock;
  if (clock === undefined) {
    return fallback;
  }
  if (typeof (clock as Partial<Clock> | null)?.now === "function") {
    return clock as Clock;
  }
  if (typeof clock === "function") {
    throw new Error(
      `${prefix}: clock is an object with now() since 0.2, not a function: pass { now: yourFunction }, or Date`,
    );
  }
  throw new Error(`${prefix}: clock must be an object with now(), such as Date, got ${String(clock)}`);
}
