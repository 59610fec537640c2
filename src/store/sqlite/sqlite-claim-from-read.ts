import type { ClaimInput, ClaimResult } from "../idempotency-store.js";
import type { SqliteStatements } from "./sqlite-statements.js";

/**
 * Answers a claim from a read alone, when it can: while another process
 * holds the write lock, a replay need not wait for it.
 *
 * The claim's upsert changes a record only when it counts as absent (expired,
 * with no live lease) or may be taken over (the same fingerprint, and
 * interrupted or past its lease and grace period); otherwise it returns the
 * record as `existing`. So when a read finds a record that is neither, the
 * claim's answer is that record, `existing`, exactly as the upsert would have
 * given it at the moment of the read: a completed record is replayed (or
 * refused for another payload), a running one waited for. Returns undefined
 * when the key is free or claimable: only the write can answer then.
 */
export function claimFromRead(statements: SqliteStatements, input: ClaimInput): ClaimResult | undefined {
  const record = statements.get(input.key);
  if (record === undefined) {
    return undefined;
  }
  const now = record.readAt;
  // The upsert's conditions (see `createSqliteStatements`); an interrupted
  // record's lease ended when it was interrupted.
  // A tombstone is a completed record too: never taken over, absent once expired.
  const done = record.status === "completed" || record.status === "tombstoned";
  const expired = record.expiresAt <= now && (done || record.leaseUntil <= now);
  const takeover =
    !done &&
    record.fingerprint === input.fingerprint &&
    (record.status === "interrupted" || record.leaseUntil + input.graceMs <= now);
  return expired || takeover ? undefined : { kind: "existing", record };
}
