import type { SweepInput } from "./idempotency-store.js";

/** What one background sweep pass did. */
export interface SweepReport {
  /** Records deleted. */
  readonly deleted: number;
  /** Outcomes dropped from records past their replay window, which stay as tombstones. */
  readonly tombstoned: number;
  /** Statements of the first stage (dropping outcomes) run. */
  readonly tombstoneBatches: number;
  /** Delete statements run. */
  readonly batches: number;
  /** Why the pass stopped early, if it failed. */
  readonly error?: unknown;
}

/** Options of `createRecordSweeper`. */
export interface RecordSweeperOptions {
  /**
   * Deletes up to `limit` records that are expired with no live lease, in
   * one statement; returns how many. The store judges expiry by its own
   * clock (the database's, for PostgreSQL), so that a sweeper on a machine
   * whose clock runs ahead never deletes a record another server still counts
   * as live.
   */
  readonly deleteBatch: (limit: number) => Promise<number>;
  /**
   * The first stage, run before deleting: drops the outcome of up to
   * `limit` completed records whose replay window ended by the store's
   * clock, keeping them as tombstones; returns how many. Absent for a store
   * without tombstones.
   */
  readonly tombstoneBatch?: (limit: number) => Promise<number>;
  /** Milliseconds between background passes; 0 runs none. */
  readonly intervalMs: number;
  /** At most this many records per delete statement. */
  readonly batchSize: number;
  /**
   * Called after each background pass. Without it, a failed pass is reported
   * with `process.emitWarning` rather than dropped.
   */
  readonly onSweep?: (report: SweepReport) => void;
}

/** Deletes expired records in small batches, on demand and on a timer. */
export interface RecordSweeper {
  /** Deletes up to `input.limit` records, `batchSize` per statement; returns how many. */
  sweep(input: SweepInput): Promise<number>;
  /** Stops the timer and waits for a running background pass, which ends after its current batch. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Creates the sweeper of a store. Each batch is its own short statement and
 * awaits the store between batches, so a large backlog never holds the event
 * loop or the database for long. The timer is unref'd: a sweeper never keeps
 * a process alive, and passes never overlap.
 */
export function createRecordSweeper(options: RecordSweeperOptions): RecordSweeper {
  const { deleteBatch, tombstoneBatch, intervalMs, batchSize, onSweep } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`sweep batch size must be a positive integer, got ${batchSize}`);
  }
  if (!(intervalMs >= 0)) {
    throw new Error(`sweep interval must be 0 or more milliseconds, got ${intervalMs}`);
  }
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  // Only a background pass stops early on `stop()`; a caller's sweep runs to its limit.
  async function pass(limit: number, progress: Progress, background: boolean): Promise<void> {
    // Bodies first: a record whose tombstone has also ended is deleted by
    // the second stage either way, and dropping first keeps the time a
    // body outlives its window short even when deletions lag.
    while (tombstoneBatch !== undefined && progress.tombstoned < limit && !(background && stopped)) {
      const want = Math.min(batchSize, Math.floor(limit - progress.tombstoned));
      if (want < 1) break;
      const count = await tombstoneBatch(want);
      progress.tombstoned += count;
      progress.tombstoneBatches++;
      if (count < want) break;
    }
    while (progress.deleted < limit && !(background && stopped)) {
      const want = Math.min(batchSize, Math.floor(limit - progress.deleted));
      if (want < 1) break;
      const count = await deleteBatch(want);
      progress.deleted += count;
      progress.batches++;
      if (count < want) break;
    }
  }

  async function backgroundPass(): Promise<void> {
    const progress: Progress = { deleted: 0, tombstoned: 0, batches: 0, tombstoneBatches: 0 };
    let report: SweepReport;
    try {
      await pass(Number.POSITIVE_INFINITY, progress, true);
      report = { ...progress };
    } catch (error) {
      report = { ...progress, error };
    }
    // The next pass is due whatever the callback does.
    schedule();
    if (onSweep !== undefined) onSweep(report);
    else if (report.error !== undefined) {
      process.emitWarning(`connect-idempotency: sweeping expired records failed: ${String(report.error)}`);
    }
  }

  function schedule(): void {
    if (stopped || intervalMs === 0) return;
    timer = setTimeout(() => {
      timer = undefined;
      running = backgroundPass();
    }, intervalMs);
    timer.unref();
  }

  schedule();
  return {
    async sweep(input) {
      const progress: Progress = { deleted: 0, tombstoned: 0, batches: 0, tombstoneBatches: 0 };
      await pass(input.limit, progress, false);
      return progress.deleted;
    },
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      await running;
    },
  };
}

interface Progress {
  deleted: number;
  tombstoned: number;
  batches: number;
  tombstoneBatches: number;
}
