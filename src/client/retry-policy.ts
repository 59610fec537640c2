import type { DescMethod } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { type Clock, resolveClock } from "../time/clock.js";
import { abortableSleep } from "./abortable-sleep.js";

/**
 * How a client retries calls that are safe to retry: calls that carry a
 * request ID, and methods marked NO_SIDE_EFFECTS or IDEMPOTENT. Modeled on
 * gRPC's retry design (A6): exponential backoff with jitter, a bounded number
 * of attempts, server pushback through `google.rpc.RetryInfo`.
 *
 * Every option is optional; `resolveRetryPolicy` fills in the defaults. Pass
 * options to a client, to the retry interceptor, or per call with
 * `withRetryOptions`.
 */
export interface RetryOptions {
  /** Attempts in total, the first one included. Default 5; 1 disables retries. */
  readonly maxAttempts?: number;
  /** Wait before the first retry, in milliseconds. Default 100. */
  readonly initialBackoffMs?: number;
  /** Longest wait between two attempts, in milliseconds, jitter included. Default 5000. */
  readonly maxBackoffMs?: number;
  /** Factor by which the wait grows after each failed attempt. Default 2. */
  readonly backoffMultiplier?: number;
  /** Spread of each wait: 0.2 means ±20%. Default 0.2. */
  readonly jitter?: number;
  /**
   * Longest time one call may take across all its attempts and waits, in
   * milliseconds. No limit by default. A `timeoutMs` in the call options
   * limits the whole call too; the shorter of the two applies.
   */
  readonly deadlineMs?: number;
  /** Called before each wait for a retry, for logs and metrics. */
  readonly onRetry?: (event: RetryEvent) => void;
  /**
   * Waits `ms` milliseconds; must reject when `signal` aborts. Tests pass a
   * fake so that backoff takes no wall time.
   */
  readonly sleep?: (ms: number, signal: AbortSignal | undefined) => Promise<void>;
  /** A random number in [0, 1), for jitter. Default `Math.random`. */
  readonly random?: () => number;
  /** The clock of the deadline, in milliseconds. Default `Date`. */
  readonly clock?: Clock;
}

/** A retry that is about to happen, as `onRetry` sees it. */
export interface RetryEvent {
  /** The method called. */
  readonly method: DescMethod;
  /** The number of the attempt that failed, starting at 1. */
  readonly attempt: number;
  /** Why it failed. */
  readonly error: ConnectError;
  /** How long the client waits before the next attempt, in milliseconds. */
  readonly delayMs: number;
  /** The request ID every attempt of the call carries; undefined for calls without one. */
  readonly requestId: string | undefined;
}

/** `RetryOptions` with every default filled in and checked. */
export type RetryPolicy = Required<Omit<RetryOptions, "deadlineMs" | "onRetry">> &
  Pick<RetryOptions, "deadlineMs" | "onRetry">;

/**
 * The defaults of `RetryOptions`: five attempts, waits of 100 ms doubling up
 * to 5 s, ±20 % jitter. The four retries of a call then spread over about
 * 1.5 s, past a typical restart or failover blip, without holding a caller
 * for long when the server is really down.
 */
export const defaultRetryOptions = {
  maxAttempts: 5,
  initialBackoffMs: 100,
  maxBackoffMs: 5_000,
  backoffMultiplier: 2,
  jitter: 0.2,
} as const;

/**
 * Merges retry options, later ones winning where they set a value, over the
 * defaults, and checks them. Throws a RangeError for a value that makes no
 * sense, such as `maxAttempts: 0`.
 */
export function resolveRetryPolicy(...layers: readonly (RetryOptions | undefined)[]): RetryPolicy {
  const merged: Record<string, unknown> = {};
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer ?? {})) {
      if (value !== undefined) {
        merged[key] = value;
      }
    }
  }
  const options = merged as RetryOptions;
  const policy: RetryPolicy = {
    maxAttempts: options.maxAttempts ?? defaultRetryOptions.maxAttempts,
    initialBackoffMs: options.initialBackoffMs ?? defaultRetryOptions.initialBackoffMs,
    maxBackoffMs: options.maxBackoffMs ?? defaultRetryOptions.maxBackoffMs,
    backoffMultiplier: options.backoffMultiplier ?? defaultRetryOptions.backoffMultiplier,
    jitter: options.jitter ?? defaultRetryOptions.jitter,
    deadlineMs: options.deadlineMs,
    onRetry: options.onRetry,
    sleep: options.sleep ?? abortableSleep,
    random: options.random ?? Math.random,
    clock: resolveClock("connect-idempotency retry options", options, Date),
  };
  check(Number.isInteger(policy.maxAttempts) && policy.maxAttempts >= 1, "maxAttempts must be an integer >= 1");
  check(policy.initialBackoffMs >= 0, "initialBackoffMs must be >= 0");
  check(policy.maxBackoffMs >= policy.initialBackoffMs, "maxBackoffMs must be >= initialBackoffMs");
  check(policy.backoffMultiplier >= 1, "backoffMultiplier must be >= 1");
  check(policy.jitter >= 0 && policy.jitter < 1, "jitter must be in [0, 1)");
  check(policy.deadlineMs === undefined || policy.deadlineMs > 0, "deadlineMs must be > 0");
  return policy;
}

function check(ok: boolean, message: string): void {
  if (!ok) {
    throw new RangeError(`connect-idempotency retry options: ${message}`);
  }
}
