/** What a lease keeper reports. */
export interface LeaseKeeperOptions {
  /** How often to renew, in milliseconds (a third of the lease). */
  readonly intervalMs: number;
  /** Extends the lease; resolves false when the claim is gone. */
  readonly renew: () => Promise<boolean>;
  /** A renewal rejected; the keeper tries again at the next tick. */
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
 * interval, so that a slow but live handler is never taken over. Renewals
 * never overlap, and the timer does not keep the process alive.
 */
export function startLeaseKeeper(options: LeaseKeeperOptions): LeaseKeeper {
  let renewing = false;
  let stopped = false;
  const stop = () => {
    stopped = true;
    clearInterval(timer);
  };
  const timer = setInterval(() => {
    if (renewing) {
      return;
    }
    renewing = true;
    options.renew().then(
      (held) => {
        renewing = false;
        if (!held && !stopped) {
          stop();
          options.onLost();
        }
      },
      (error: unknown) => {
        renewing = false;
        if (!stopped) {
          options.onError(error);
        }
      },
    );
  }, options.intervalMs);
  timer.unref();
  return { stop };
}
