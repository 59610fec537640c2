import type { QueryConfig } from "pg";
import type {
  ClaimInput,
  ClaimResult,
  CompleteInput,
  IdempotencyRecord,
  OwnerInput,
  RecordKey,
  RenewInput,
  SweepInput,
} from "../idempotency-store.js";

/** A record row as `pg` returns it: `bigint` columns arrive as strings. */
export interface RecordRow {
  readonly scope: string;
  readonly method: string;
  readonly key: string;
  readonly status: "in_progress" | "completed";
  readonly fingerprint: string;
  readonly owner: string;
  readonly created_at: string;
  readonly updated_at: string;
  readonly lease_until: string;
  readonly expires_at: string;
  readonly takeovers: number;
  readonly outcome: Buffer | null;
}

/** A claim row: a record row, and whether the claim inserted it. */
export interface ClaimRow extends RecordRow {
  readonly inserted: boolean;
}

/**
 * The SQL of every store operation on one table, as `pg` query configs, so
 * that the store and code running inside a caller's transaction (such as the
 * completion of a key together with the handler's own writes) share one text.
 */
export interface PostgresStatements {
  /** Inserts a claim, or takes over an expired one; returns no row when another record holds the key. */
  claim(input: ClaimInput): QueryConfig<unknown[]>;
  /** Reads one record. */
  get(key: RecordKey): QueryConfig<unknown[]>;
  /** Stores the outcome if `owner` still holds the claim; one row affected on success. */
  complete(input: CompleteInput): QueryConfig<unknown[]>;
  /** Deletes the claim if `owner` still holds it; one row affected on success. */
  release(input: OwnerInput): QueryConfig<unknown[]>;
  /** Extends the lease if `owner` still holds the claim; one row affected on success. */
  renew(input: RenewInput): QueryConfig<unknown[]>;
  /** Deletes up to `limit` expired records whose lease has ended. */
  sweep(input: SweepInput): QueryConfig<unknown[]>;
}

const columns =
  "scope, method, key, status, fingerprint, owner, created_at, updated_at, lease_until, expires_at, takeovers, outcome";

/**
 * Builds the statements for a table whose name is already quoted and
 * qualified, such as `"public"."connect_idempotency_records"`.
 */
export function createPostgresStatements(qualifiedTable: string): PostgresStatements {
  const keyMatch = "scope = $1 AND method = $2 AND key = $3";
  // A record counts as absent once it expired, unless an in-progress claim
  // still holds a lease: the same rule as the sweeper's. A completed record's
  // lease ended when it completed.
  const expired = "(r.expires_at <= $6 AND (r.status = 'completed' OR r.lease_until <= $6))";
  // Only the same payload may take over a dead claim: another payload under
  // a key that may already have had effects is a client bug.
  const takeover = "(r.status = 'in_progress' AND r.lease_until <= $6 AND r.fingerprint = EXCLUDED.fingerprint)";
  // `xmax` is 0 only on a row this statement inserted; an updated row carries
  // the lock of the conflict. What an update replaced follows from
  // `takeovers`, which only a takeover leaves above 0.
  const claimText = `INSERT INTO ${qualifiedTable} AS r (${columns})
VALUES ($1::text, $2::text, $3::text, 'in_progress', $4::text, $5::text, $6::bigint, $6::bigint, $7::bigint, $8::bigint, 0, NULL)
ON CONFLICT (scope, method, key) DO UPDATE SET
  status = 'in_progress',
  fingerprint = EXCLUDED.fingerprint,
  owner = EXCLUDED.owner,
  created_at = CASE WHEN ${takeover} THEN r.created_at ELSE EXCLUDED.created_at END,
  updated_at = EXCLUDED.updated_at,
  lease_until = EXCLUDED.lease_until,
  expires_at = EXCLUDED.expires_at,
  takeovers = CASE WHEN ${takeover} THEN r.takeovers + 1 ELSE 0 END,
  outcome = NULL
WHERE ${takeover} OR ${expired}
RETURNING ${columns}, (r.xmax = 0) AS inserted`;
  const getText = `SELECT ${columns} FROM ${qualifiedTable} WHERE ${keyMatch}`;
  const completeText = `UPDATE ${qualifiedTable}
SET status = 'completed', outcome = $5, updated_at = $6, lease_until = $6, expires_at = $7
WHERE ${keyMatch} AND owner = $4 AND status = 'in_progress'`;
  const releaseText = `DELETE FROM ${qualifiedTable} WHERE ${keyMatch} AND owner = $4 AND status = 'in_progress'`;
  const renewText = `UPDATE ${qualifiedTable} SET lease_until = $5
WHERE ${keyMatch} AND owner = $4 AND status = 'in_progress'`;
  // Small batches keep each statement short; SKIP LOCKED lets several
  // processes sweep at once without waiting on each other or on claims. The
  // outer condition is checked again on the row version the delete sees.
  const sweepText = `DELETE FROM ${qualifiedTable}
WHERE (scope, method, key) IN (
  SELECT scope, method, key FROM ${qualifiedTable}
  WHERE expires_at <= $1 AND lease_until <= $1
  LIMIT $2
  FOR UPDATE SKIP LOCKED
) AND expires_at <= $1 AND lease_until <= $1`;
  const keyValues = (key: RecordKey) => [toPostgresText(key.scope), toPostgresText(key.method), toPostgresText(key.key)];
  return {
    claim: (input) => ({
      text: claimText,
      values: [...keyValues(input.key), input.fingerprint, input.owner, input.now, input.leaseUntil, input.expiresAt],
    }),
    get: (key) => ({ text: getText, values: keyValues(key) }),
    complete: (input) => ({
      text: completeText,
      values: [...keyValues(input.key), input.owner, input.outcome, input.now, input.expiresAt],
    }),
    release: (input) => ({ text: releaseText, values: [...keyValues(input.key), input.owner] }),
    renew: (input) => ({ text: renewText, values: [...keyValues(input.key), input.owner, input.leaseUntil] }),
    sweep: (input) => ({ text: sweepText, values: [input.now, input.limit] }),
  };
}

/** Converts a row into a record. */
export function toIdempotencyRecord(row: RecordRow): IdempotencyRecord {
  return {
    scope: fromPostgresText(row.scope),
    method: fromPostgresText(row.method),
    key: fromPostgresText(row.key),
    status: row.status,
    fingerprint: row.fingerprint,
    owner: row.owner,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    leaseUntil: Number(row.lease_until),
    expiresAt: Number(row.expires_at),
    takeovers: row.takeovers,
    // A plain Uint8Array view: callers compare and decode it like any other store's.
    outcome: row.outcome === null ? undefined : new Uint8Array(row.outcome.buffer, row.outcome.byteOffset, row.outcome.byteLength),
  };
}

/** Converts the row a claim returned into a claim result. */
export function toClaimResult(row: ClaimRow): ClaimResult {
  const replaced = row.inserted ? "none" : row.takeovers > 0 ? "takeover" : "expired";
  return { kind: "claimed", replaced, record: toIdempotencyRecord(row) };
}

// PostgreSQL text cannot hold U+0000, yet keys are verbatim strings. U+0001
// escapes: U+0000 is stored as U+0001 U+0002 and U+0001 as U+0001 U+0001.
// Every other string, so every request ID and every ordinary scope, is
// stored as is and stays readable and searchable in SQL.
const escapeChar = "\u0001";

/** Encodes a scope, method or key for the text columns; see `fromPostgresText`. */
export function toPostgresText(value: string): string {
  if (!value.includes("\u0000") && !value.includes(escapeChar)) {
    return value;
  }
  return value.replace(/[\u0000\u0001]/g, (char) => (char === escapeChar ? "\u0001\u0001" : "\u0001\u0002"));
}

/** Decodes what `toPostgresText` stored. */
export function fromPostgresText(value: string): string {
  if (!value.includes(escapeChar)) {
    return value;
  }
  return value.replace(/\u0001([\u0001\u0002])/g, (_, char: string) => (char === escapeChar ? escapeChar : "\u0000"));
}
