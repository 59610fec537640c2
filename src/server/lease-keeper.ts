/** What a lease keeper reports. */
export interface LeaseKeeperOptions {
  /** How often to renew, in milliseconds (a third of the lease). */
  readonly intervalMs: number;
  /** How soon to try again after a renewal failed, in milliseconds. */
  readonly retryMs: number;
  /** Extends the lease; resolves false when the claim is gone. */
  readonly renew: () => Promise<boolean>;
  /** A renewal rejected; the keeper tries again after `retryMs`. */
  readonly onError: (error: unknown) => void;
  /** The claim is gone (taken over); the keeper has stopped. */
  readonly onLost: () => void;
}

/** Stops a lease keeper. */
export interface LeaseKeeper {
  /** Stops renewing. Idempotent. */
  stop(): void;
}

/**
 * Keeps the lease of a running execution alive by renewing it at a fixed
 * interval, so that a slow but live handler is never taken over. After a
 * failed renewal (the store is unreachable) it tries again soon rather than
 * at the next interval, so that an owner whose store comes back renews
 * before a retry can take over. Renewals never overlap, and the timer does
 * not keep the process alive.
 */
export function startLeaseKeeper(options: LeaseKeeperOptions): LeaseKeeper {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const schedule = (ms: number) => {
    timer = setTimeout(renew, ms);
    timer.unref();
  };
  const renew = () => {
    timer = undefined;
    options.renew().then(
      (held) => {
        if (stopped) return;
        if (held) {
          schedule(options.intervalMs);
        } else {
          stopped = true;
          options.onLost();
        }
      },
      (error: unknown) => {
        if (stopped) return;
        options.onError(error);
        schedule(options.retryMs);
      },
    );
  };
  schedule(options.intervalMs);
  return {
    stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
  };
}
