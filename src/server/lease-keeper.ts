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
  // State and module-level steps rather than closures: one keeper starts
  // per execution, and closures are what a call allocates most of.
  const state: KeeperState = { options, stopped: false, timer: undefined };
  schedule(state, options.intervalMs);
  return {
    stop() {
      state.stopped = true;
      if (state.timer !== undefined) clearTimeout(state.timer);
      state.timer = undefined;
    },
  };
}

interface KeeperState {
  readonly options: LeaseKeeperOptions;
  stopped: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
}

function schedule(state: KeeperState, ms: number): void {
  state.timer = setTimeout(renew, ms, state);
  state.timer.unref();
}

function renew(state: KeeperState): void {
  state.timer = undefined;
  const { options } = state;
  options.renew().then(
    (held) => {
      if (state.stopped) return;
      if (held) {
        schedule(state, options.intervalMs);
      } else {
        state.stopped = true;
        options.onLost();
      }
    },
    (error: unknown) => {
      if (state.stopped) return;
      options.onError(error);
      schedule(state, options.retryMs);
    },
  );
}
