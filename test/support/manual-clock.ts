import type { Clock } from "../../src/time/clock.js";

/** A clock that only moves when a test moves it; pass it as a SQLite store's `clock`. */
export interface ManualClock extends Clock {
  /** The current time in milliseconds since the epoch. */
  now(): number;
  /** Moves the clock forward by `ms`. */
  advance(ms: number): void;
}

/** Creates a manual clock starting at `start` (ms since the epoch). */
export function createManualClock(start = Date.UTC(2030, 0, 1)): ManualClock {
  let current = start;
  return {
    now: () => current,
    advance(ms) {
      current += ms;
    },
  };
}
