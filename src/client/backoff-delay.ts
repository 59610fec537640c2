import type { RetryPolicy } from "./retry-policy.js";

/**
 * The wait before the next attempt after `failedAttempts` failures:
 * `initialBackoffMs * backoffMultiplier^(failedAttempts - 1)`, spread by
 * ±`jitter` so that clients that failed together do not come back together,
 * and never more than `maxBackoffMs`.
 */
export function backoffDelayMs(failedAttempts: number, policy: RetryPolicy): number {
  const base = policy.initialBackoffMs * policy.backoffMultiplier ** (failedAttempts - 1);
  const spread = 1 + policy.jitter * (2 * policy.random() - 1);
  return Math.min(Math.min(base, policy.maxBackoffMs) * spread, policy.maxBackoffMs);
}
