/**
 * The memory that outcomes waiting for their write to the store may take:
 * while the store refuses writes (a full disk, an outage), every executed
 * call would otherwise hold its outcome until it can be written.
 */
export interface PendingBudget {
  /** Takes room for one outcome of `bytes`; false, taking nothing, when it does not fit. */
  reserve(bytes: number): boolean;
  /** Gives back the room of an outcome that was written, lost or given up. */
  free(bytes: number): void;
  /** Outcomes held now. */
  readonly count: number;
  /** Bytes held now. */
  readonly bytes: number;
}

/** Creates a budget of at most `maxCount` outcomes and `maxBytes` bytes. */
export function createPendingBudget(maxCount: number, maxBytes: number): PendingBudget {
  let count = 0;
  let bytes = 0;
  return {
    reserve(size) {
      if (count + 1 > maxCount || bytes + size > maxBytes) {
        return false;
      }
      count += 1;
      bytes += size;
      return true;
    },
    free(size) {
      count -= 1;
      bytes -= size;
    },
    get count() {
      return count;
    },
    get bytes() {
      return bytes;
    },
  };
}
