import { createHash } from "node:crypto";
import type { QueryConfig } from "pg";
import {
  type ChecksumColumnsSql,
  checksumOwnColumns,
  recordChecksumBytes,
  rowChecksumMatches,
} from "../record-checksum.js";
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
  /** Never `interrupted`: that is the `interrupted` column. */
  readonly status: "in_progress" | "completed";
  readonly fingerprint: string;
  readonly owner: string;
  readonly created_at: string;
  readonly updated_at: string;
  readonly lease_until: string;
  readonly expires_at: string;
  readonly takeovers: number;
  readonly interrupted: boolean;
  readonly outcome: Buffer | null;
  /** `recordChecksum` of the row; null on rows written before schema version 4. */
  readonly checksum: Buffer | null;
  /** End of the replay window of a record with a tombstone; null otherwise (and before schema version 5). */
  readonly replay_until: string | null;
  /** The outcome's code, set with `replay_until`. */
  readonly outcome_code: number | null;
  /** The database's clock when the statement read the row. */
  readonly read_at: string;
}

/** A claim row: a record row, and whether the claim inserted it. */
export interface ClaimRow extends RecordRow {
  readonly inserted: boolean;
}

/**
 * The SQL of every store operation on one table, as `pg` query configs, so
 * that the store and code running inside a caller's transaction (such as the
 * completion of a key together with the handler's own writes) share one text.
 *
 * Every time is the database server's clock (`clock_timestamp()`, read once
 * per statement), never the application server's: servers whose clocks
 * disagree still agree on leases and expiry. Writes of an execution match
 * its owner token and attempt (`takeovers` holds `attempt - 1`), and a
 * running claim is `in_progress` and not interrupted.
 *
 * Claims, completions and renewals take many inputs in one statement, so
 * that one statement serves many callers: the `...Batch` forms take several
 * inputs with distinct keys, the plain forms one. Up to 16 inputs go as
 * plain parameters in a `VALUES` list (a statement per count, which
 * PostgreSQL plans once per connection), more as arrays (`unnest`). Each
 * input is judged on its own row exactly as it would be alone; a key that appears
 * twice in one batch is a caller's error (a claim then fails with
 * "ON CONFLICT DO UPDATE command cannot affect row a second time").
 */
export interface PostgresStatements {
  /**
   * Inserts a claim, replaces an expired record, or takes over an
   * interrupted claim or one whose lease and grace ended, with the same
   * fingerprint; returns no row when another record holds the key.
   */
  claim(input: ClaimInput): QueryConfig<unknown[]>;
  /**
   * `claim` for several keys in one statement, in the order given (which
   * orders their row locks): one claim row per key claimed, none for a key
   * another record holds; tell them apart by `scope`, `method` and `key`.
   */
  claimBatch(inputs: readonly ClaimInput[]): QueryConfig<unknown[]>;
  /** Reads one record, with the database's clock as `read_at`. */
  get(key: RecordKey): QueryConfig<unknown[]>;
  /**
   * Stores the outcome if `owner` and `attempt` hold the running claim.
   * Returns one row whose `completed` is true when they completed the
   * record, by this statement or by an earlier one whose answer was lost.
   */
  complete(input: CompleteInput): QueryConfig<unknown[]>;
  /** `complete` for several keys in one statement: one row per input, in the order given. */
  completeBatch(inputs: readonly CompleteInput[]): QueryConfig<unknown[]>;
  /**
   * Marks the running claim of `owner` and `attempt` interrupted and ends its
   * lease; one row affected on success, also when it already was.
   */
  interrupt(input: OwnerInput): QueryConfig<unknown[]>;
  /** Deletes the claim if `owner` and `attempt` hold it and it is running; one row affected on success. */
  release(input: OwnerInput): QueryConfig<unknown[]>;
  /** Extends the lease if `owner` and `attempt` hold the running claim; one row affected on success. */
  renew(input: RenewInput): QueryConfig<unknown[]>;
  /**
   * `renew` for several keys in one statement: one row, whose `ord` is the
   * input's position counting from 1, per lease extended.
   */
  renewBatch(inputs: readonly RenewInput[]): QueryConfig<unknown[]>;
  /** Deletes up to `limit` records expired by the database's clock whose lease has ended. */
  sweep(input: SweepInput): QueryConfig<unknown[]>;
  /**
   * Drops the outcome of up to `limit` intact completed records past their
   * replay window by the database's clock, rewriting their checksum: they
   * stay as tombstones.
   */
  tombstone(input: SweepInput): QueryConfig<unknown[]>;
}

/** Settings of `createPostgresStatements`. */
export interface PostgresStatementsOptions {
  /**
   * Names every statement (`pg`'s `name`, after a hash of its text), so that
   * each connection parses and plans it once and then only binds values.
   * Off, every statement is parsed and planned on every call, as a pooler
   * that moves sessions between connections needs (PgBouncer in
   * transaction mode before 1.21). Default false.
   */
  readonly prepared?: boolean;
}

/**
 * The database server's clock in ms since the epoch, as SQL. Statements that
 * need it more than once read it once in a CTE, so that one statement sees
 * one time.
 */
export const postgresClockMs = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/** The columns of a record row, without `read_at`. */
export const postgresRecordColumns =
  "scope, method, key, status, fingerprint, owner, created_at, updated_at, lease_until, expires_at, takeovers, interrupted, outcome, checksum, replay_until, outcome_code";

/** SQL expressions for the fields `recordChecksum` covers. */
export type PostgresChecksumColumns = ChecksumColumnsSql;

const ownColumns: PostgresChecksumColumns = checksumOwnColumns;

/**
 * `recordChecksum` as SQL, over the given expressions (by default a row's
 * own columns): the same bytes, hashed by the database's `sha256`, so that
 * statements whose times come from the database's clock write it in the
 * statement, and the store checks it in JavaScript.
 */
export function postgresChecksumSql(columns: Partial<PostgresChecksumColumns> = {}): string {
  const c = { ...ownColumns, ...columns };
  const text = (expression: string) =>
    `int4send(octet_length(convert_to(${expression}, 'UTF8'))) || convert_to(${expression}, 'UTF8')`;
  const outcome = `CASE WHEN ${c.outcome} IS NULL THEN '\\xffffffff'::bytea ELSE int4send(octet_length(${c.outcome})) || ${c.outcome} END`;
  const input = [c.scope, c.method, c.key, c.fingerprint, c.status].map(text).join(" || ");
  // Only a record with a replay end hashes it and its code, as `recordChecksum` does.
  const replay = `CASE WHEN (${c.replayLifetimeMs}) IS NULL THEN ''::bytea ELSE int8send((${c.replayLifetimeMs})::bigint) || int4send(coalesce((${c.outcomeCode})::integer, 0)) END`;
  return `substr(sha256(${input} || int8send((${c.lifetimeMs})::bigint) || ${outcome} || ${replay}), 1, ${recordChecksumBytes})`;
}

/**
 * SQL that is true for a row (of alias `alias`, if given) whose checksum
 * matches its columns, and for one written before the store kept checksums.
 */
export function postgresRowIntactSql(alias?: string): string {
  const p = alias === undefined ? "" : `${alias}.`;
  const columns: PostgresChecksumColumns = {
    scope: `${p}scope`,
    method: `${p}method`,
    key: `${p}key`,
    fingerprint: `${p}fingerprint`,
    status: `${p}status`,
    lifetimeMs: `${p}expires_at - ${p}created_at`,
    outcome: `${p}outcome`,
    replayLifetimeMs: `${p}replay_until - ${p}created_at`,
    outcomeCode: `${p}outcome_code`,
  };
  return `(${p}checksum IS NULL OR ${p}checksum = ${postgresChecksumSql(columns)})`;
}

/** Whether a row read back matches its checksum (or has none, from before version 4). */
export function postgresRowIntact(row: RecordRow): boolean {
  return rowChecksumMatches({
    ...row,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    replayUntil: row.replay_until === null ? null : Number(row.replay_until),
    outcomeCode: row.outcome_code,
  });
}

const columns = postgresRecordColumns;

/**
 * Builds the statements for a table whose name is already quoted and
 * qualified, such as `"public"."connect_idempotency_records"`.
 */
export function createPostgresStatements(
  qualifiedTable: string,
  options: PostgresStatementsOptions = {},
): PostgresStatements {
  const keyMatch = "scope = $1 AND method = $2 AND key = $3";
  // An input row `i` of a batch against a record row `r`.
  const inputKeyMatch = "r.scope = i.scope AND r.method = i.method AND r.key = i.key";
  const inputRunning =
    "r.owner = i.owner AND r.takeovers = i.takeovers AND r.status = 'in_progress' AND NOT r.interrupted";
  const running = "owner = $4 AND takeovers = $5 AND status = 'in_progress' AND NOT interrupted";
  // In the upsert, EXCLUDED holds the attempted insert, whose `updated_at` is
  // the statement's time. A record counts as absent once it expired, unless
  // an in-progress claim still holds a lease: the same rule as the
  // sweeper's, so a claim never depends on whether the sweeper already ran.
  // A completed or interrupted record's lease ended when it completed or was
  // interrupted.
  const expired =
    "(r.expires_at <= EXCLUDED.updated_at AND (r.status = 'completed' OR r.lease_until <= EXCLUDED.updated_at))";
  // Only the same payload may take over an unfinished claim: another payload
  // under a key that may already have had effects is a client bug. A running
  // claim is taken over once its lease and the grace period passed, an
  // interrupted one at once. EXCLUDED has only the table's columns, so the
  // grace period of the claim is looked up in the input by key, which is
  // unique in a batch.
  const graceOfClaim =
    "(SELECT g.grace_ms FROM input AS g WHERE g.scope = EXCLUDED.scope AND g.method = EXCLUDED.method AND g.key = EXCLUDED.key)";
  const takeover =
    "(r.status = 'in_progress' AND r.fingerprint = EXCLUDED.fingerprint " +
    `AND (r.interrupted OR r.lease_until + ${graceOfClaim} <= EXCLUDED.updated_at))`;
  // A damaged record is never replaced (a bad `expires_at` would make a
  // completed record look expired and run its request again): the claim
  // then finds it, and its check in JavaScript reports it.
  // `xmax` is 0 only on a row this statement inserted; an updated row carries
  // the lock of the conflict. SET sees the old row and the WHERE lets only
  // `expired` or `takeover` through, so `expired` alone tells them apart;
  // what an update replaced then follows from `takeovers`, which only a
  // takeover leaves above 0 (and the phases trigger reads it so too).
  // A takeover keeps the first claim's `created_at`, which the lifetime in
  // its checksum counts from.
  const takeoverChecksum = postgresChecksumSql({
    scope: "EXCLUDED.scope",
    method: "EXCLUDED.method",
    key: "EXCLUDED.key",
    fingerprint: "EXCLUDED.fingerprint",
    status: "'in_progress'",
    lifetimeMs: "EXCLUDED.expires_at - r.created_at",
    outcome: "NULL::bytea",
    replayLifetimeMs: "NULL::bigint",
    outcomeCode: "NULL::integer",
  });
  // Rows are inserted in the order of the arrays, so batches whose keys come
  // sorted take their row locks in one order and never deadlock each other.
  const claimText = (form: InputForm) => `WITH clock AS (SELECT ${postgresClockMs} AS ms),
${inputCte(form, claimColumns)}
INSERT INTO ${qualifiedTable} AS r (${columns})
SELECT i.scope, i.method, i.key, 'in_progress', i.fingerprint, i.owner, ms, ms, ms + i.lease_ms, ms + i.expires_in_ms, 0, false, NULL::bytea,
  ${postgresChecksumSql({ scope: "i.scope", method: "i.method", key: "i.key", fingerprint: "i.fingerprint", status: "'in_progress'", lifetimeMs: "i.expires_in_ms", outcome: "NULL::bytea", replayLifetimeMs: "NULL::bigint", outcomeCode: "NULL::integer" })},
  NULL::bigint, NULL::integer
FROM input AS i, clock
ON CONFLICT (scope, method, key) DO UPDATE SET
  status = 'in_progress',
  fingerprint = EXCLUDED.fingerprint,
  owner = EXCLUDED.owner,
  created_at = CASE WHEN ${expired} THEN EXCLUDED.created_at ELSE r.created_at END,
  updated_at = EXCLUDED.updated_at,
  lease_until = EXCLUDED.lease_until,
  expires_at = EXCLUDED.expires_at,
  takeovers = CASE WHEN ${expired} THEN 0 ELSE r.takeovers + 1 END,
  interrupted = false,
  outcome = NULL,
  replay_until = NULL,
  outcome_code = NULL,
  checksum = CASE WHEN ${expired} THEN EXCLUDED.checksum ELSE ${takeoverChecksum} END
WHERE (${expired} OR ${takeover}) AND ${postgresRowIntactSql("r")}
RETURNING ${columns}, r.updated_at AS read_at, (r.xmax = 0) AS inserted`;
  const getText = `SELECT ${columns}, ${postgresClockMs} AS read_at FROM ${qualifiedTable} WHERE ${keyMatch}`;
  // Without a tombstone period (0) a completed record is what it was before
  // tombstones: replayed until it expires, no replay end, same checksum.
  const replayUntil = "(CASE WHEN i.tombstone_ms > 0 THEN clock.ms + i.retention_ms END)";
  const outcomeCode = "(CASE WHEN i.tombstone_ms > 0 THEN i.outcome_code END)";
  // The outer SELECT reads the table as it was before the UPDATE: a row
  // completed by this owner and attempt then is an earlier completion of
  // theirs whose answer was lost (a connection cut after COMMIT).
  const completeText = (form: InputForm) => `WITH clock AS (SELECT ${postgresClockMs} AS ms),
${inputCte(form, completeColumns, true)},
done AS (
  UPDATE ${qualifiedTable} AS r
  SET status = 'completed', outcome = i.outcome, updated_at = clock.ms, lease_until = clock.ms,
    expires_at = clock.ms + i.retention_ms + i.tombstone_ms, replay_until = ${replayUntil}, outcome_code = ${outcomeCode},
    checksum = ${postgresChecksumSql({
      scope: "r.scope",
      method: "r.method",
      key: "r.key",
      fingerprint: "r.fingerprint",
      status: "'completed'",
      lifetimeMs: "clock.ms + i.retention_ms + i.tombstone_ms - r.created_at",
      outcome: "i.outcome",
      replayLifetimeMs: `${replayUntil} - r.created_at`,
      outcomeCode,
    })}
  FROM input AS i, clock
  WHERE ${inputKeyMatch} AND ${inputRunning}
  RETURNING i.ord
)
SELECT i.ord IN (SELECT ord FROM done) OR EXISTS (
  SELECT 1 FROM ${qualifiedTable} AS r WHERE ${inputKeyMatch} AND r.owner = i.owner AND r.takeovers = i.takeovers AND r.status = 'completed'
) AS completed
FROM input AS i
ORDER BY i.ord`;
  // Interrupting twice keeps the first end of the lease.
  const interruptText = `WITH clock AS (SELECT ${postgresClockMs} AS ms)
UPDATE ${qualifiedTable}
SET interrupted = true, lease_until = CASE WHEN interrupted THEN lease_until ELSE clock.ms END, updated_at = clock.ms
FROM clock
WHERE ${keyMatch} AND owner = $4 AND takeovers = $5 AND status = 'in_progress'`;
  const releaseText = `DELETE FROM ${qualifiedTable} WHERE ${keyMatch} AND ${running}`;
  const renewText = (form: InputForm) => `WITH clock AS (SELECT ${postgresClockMs} AS ms),
${inputCte(form, renewColumns, true)}
UPDATE ${qualifiedTable} AS r SET lease_until = clock.ms + i.lease_ms
FROM input AS i, clock
WHERE ${inputKeyMatch} AND ${inputRunning}
RETURNING i.ord`;
  // Small batches keep each statement short; SKIP LOCKED lets several
  // processes sweep at once without waiting on each other or on claims. The
  // outer condition is checked again on the row version the delete sees.
  const sweepText = `WITH clock AS (SELECT ${postgresClockMs} AS ms)
DELETE FROM ${qualifiedTable} AS d USING clock
WHERE (d.scope, d.method, d.key) IN (
  SELECT s.scope, s.method, s.key FROM ${qualifiedTable} AS s, clock
  WHERE s.expires_at <= clock.ms AND s.lease_until <= clock.ms
  LIMIT $1
  FOR UPDATE OF s SKIP LOCKED
) AND d.expires_at <= clock.ms AND d.lease_until <= clock.ms`;
  // The first stage of sweeping: a record past its replay window keeps its
  // key, fingerprint, times and code as a tombstone. Only an intact row is
  // rewritten, or its new checksum would vouch for damage. The partial index
  // on `replay_until` holds just the rows with a body left to drop.
  const tombstoneText = `WITH clock AS (SELECT ${postgresClockMs} AS ms)
UPDATE ${qualifiedTable} AS d SET outcome = NULL, checksum = ${postgresChecksumSql({
    scope: "d.scope",
    method: "d.method",
    key: "d.key",
    fingerprint: "d.fingerprint",
    status: "d.status",
    lifetimeMs: "d.expires_at - d.created_at",
    outcome: "NULL::bytea",
    replayLifetimeMs: "d.replay_until - d.created_at",
    outcomeCode: "d.outcome_code",
  })}
FROM clock
WHERE (d.scope, d.method, d.key) IN (
  SELECT s.scope, s.method, s.key FROM ${qualifiedTable} AS s, clock
  WHERE s.replay_until <= clock.ms AND s.replay_until IS NOT NULL AND s.outcome IS NOT NULL AND s.status = 'completed'
    AND ${postgresRowIntactSql("s")}
  LIMIT $1
  FOR UPDATE OF s SKIP LOCKED
) AND d.replay_until <= clock.ms AND d.outcome IS NOT NULL AND d.status = 'completed'`;
  const query = (text: string) => postgresQuery(text, options.prepared === true);
  const claimQuery = inputForms(claimText, query);
  const getQuery = query(getText);
  const completeQuery = inputForms(completeText, query);
  const interruptQuery = query(interruptText);
  const releaseQuery = query(releaseText);
  const renewQuery = inputForms(renewText, query);
  const sweepQuery = query(sweepText);
  const tombstoneQuery = query(tombstoneText);
  const keyValues = (key: RecordKey) => [
    toPostgresText(key.scope),
    toPostgresText(key.method),
    toPostgresText(key.key),
  ];
  const ownerValues = (input: OwnerInput) => [...keyValues(input.key), input.owner, input.attempt - 1];
  const claimValues = (input: ClaimInput) => [
    ...keyValues(input.key),
    input.fingerprint,
    input.owner,
    input.leaseMs,
    input.graceMs,
    input.expiresInMs,
  ];
  const completeValues = (input: CompleteInput) => [
    ...ownerValues(input),
    input.outcome,
    input.retentionMs,
    input.tombstoneMs ?? 0,
    input.outcomeCode ?? 0,
  ];
  const renewValues = (input: RenewInput) => [...ownerValues(input), input.leaseMs];
  return {
    claim: (input) => claimQuery.one(claimValues(input)),
    claimBatch: (inputs) => claimQuery.batch(inputs, claimValues),
    get: (key) => getQuery(keyValues(key)),
    complete: (input) => completeQuery.one(completeValues(input)),
    completeBatch: (inputs) => completeQuery.batch(inputs, completeValues),
    interrupt: (input) => interruptQuery(ownerValues(input)),
    release: (input) => releaseQuery(ownerValues(input)),
    renew: (input) => renewQuery.one(renewValues(input)),
    renewBatch: (inputs) => renewQuery.batch(inputs, renewValues),
    sweep: (input) => sweepQuery([input.limit]),
    tombstone: (input) => tombstoneQuery([input.limit]),
  };
}

/**
 * Makes query configs of `text`: named when `prepared`, so that `pg`
 * prepares the statement once per connection and then only binds values.
 */
export function postgresQuery(text: string, prepared: boolean): (values: unknown[]) => QueryConfig<unknown[]> {
  if (!prepared) {
    return (values) => ({ text, values });
  }
  // A name must stand for one text on a connection (`pg` refuses to reuse
  // one for another), and stores on other tables may share a pool: the
  // name is a hash of the text.
  const name = `connect_idempotency_${createHash("sha256").update(text).digest("hex").slice(0, 24)}`;
  return (values) => ({ name, text, values });
}

/**
 * How a statement takes its inputs: a count of inputs, each as plain
 * parameters in a `VALUES` list, or `"arrays"`, one array per column,
 * through `unnest`.
 */
type InputForm = number | "arrays";

/**
 * Batches of up to this many inputs get a statement of their size, whose
 * `VALUES` list PostgreSQL plans once per connection; larger ones share the
 * `unnest` form, whose planning, when PostgreSQL plans it again, their size
 * pays for.
 */
const maxValuesInputs = 16;

/** The columns of a statement's `input` CTE, in parameter order, with their types. */
type InputColumns = readonly (readonly [name: string, type: string])[];

// Every claim, completion and renewal has an `input` CTE of these columns.
const claimColumns: InputColumns = [
  ["scope", "text"],
  ["method", "text"],
  ["key", "text"],
  ["fingerprint", "text"],
  ["owner", "text"],
  ["lease_ms", "bigint"],
  ["grace_ms", "bigint"],
  ["expires_in_ms", "bigint"],
];
// The inputs of an owner's write: `takeovers` is `attempt - 1`.
const ownerColumns: InputColumns = [
  ["scope", "text"],
  ["method", "text"],
  ["key", "text"],
  ["owner", "text"],
  ["takeovers", "integer"],
];
const completeColumns: InputColumns = [
  ...ownerColumns,
  ["outcome", "bytea"],
  ["retention_ms", "bigint"],
  ["tombstone_ms", "bigint"],
  ["outcome_code", "integer"],
];
const renewColumns: InputColumns = [...ownerColumns, ["lease_ms", "bigint"]];

/**
 * The `input` CTE of a statement, numbered by `ord` from 1 when `numbered`.
 * PostgreSQL estimates `unnest` of a parameter at 100 rows, so for a few
 * inputs the generic plan of the array form looks dearer than a custom one,
 * and a named statement of that form is planned again on every call, which
 * costs more than running it (about 220 us of database CPU for the
 * completion of one key). A `VALUES` list has as many rows as it says.
 */
function inputCte(form: InputForm, columns: InputColumns, numbered = false): string {
  const names = [...columns.map(([name]) => name), ...(numbered ? ["ord"] : [])].join(", ");
  if (form === "arrays") {
    const arrays = columns.map(([, type], index) => `$${index + 1}::${type}[]`);
    return `input AS (
  SELECT * FROM unnest(${arrays.join(", ")})${numbered ? " WITH ORDINALITY" : ""} AS i(${names})
)`;
  }
  const rows = Array.from({ length: form }, (_, row) => {
    const values = columns.map(([, type], column) => `$${row * columns.length + column + 1}::${type}`);
    return `(${[...values, ...(numbered ? [`${row + 1}::bigint`] : [])].join(", ")})`;
  });
  return `input (${names}) AS (VALUES ${rows.join(",\n  ")})`;
}

/** A statement for any number of inputs: `one` for a single input's values, `batch` for several inputs. */
interface InputForms {
  readonly one: (values: unknown[]) => QueryConfig<unknown[]>;
  readonly batch: <T>(inputs: readonly T[], valuesOf: (input: T) => unknown[]) => QueryConfig<unknown[]>;
}

function inputForms(
  text: (form: InputForm) => string,
  query: (text: string) => (values: unknown[]) => QueryConfig<unknown[]>,
): InputForms {
  // Built on first use: most processes only ever see a few batch sizes.
  const sized: ((values: unknown[]) => QueryConfig<unknown[]>)[] = [];
  const ofSize = (count: number) => {
    let form = sized[count];
    if (form === undefined) {
      form = query(text(count));
      sized[count] = form;
    }
    return form;
  };
  const arrays = query(text("arrays"));
  return {
    one: (values) => ofSize(1)(values),
    batch: (inputs, valuesOf) =>
      inputs.length <= maxValuesInputs
        ? ofSize(inputs.length)(inputs.flatMap(valuesOf))
        : arrays(columnArrays(inputs, valuesOf)),
  };
}

/** Transposes inputs into one array per parameter, for `unnest`. */
function columnArrays<T>(inputs: readonly T[], row: (input: T) => unknown[]): unknown[][] {
  const rows = inputs.map(row);
  return (rows[0] ?? []).map((_, column) => rows.map((values) => values[column]));
}

/** Converts a row into a record. */
export function toIdempotencyRecord(row: RecordRow): IdempotencyRecord {
  return {
    scope: fromPostgresText(row.scope),
    method: fromPostgresText(row.method),
    key: fromPostgresText(row.key),
    status: row.interrupted
      ? "interrupted"
      : // Without its body it is a tombstone whatever the clock says now: a
        // clock set back must not replay an empty outcome.
        row.status === "completed" &&
          row.replay_until !== null &&
          (Number(row.replay_until) <= Number(row.read_at) || row.outcome === null)
        ? "tombstoned"
        : row.status,
    fingerprint: row.fingerprint,
    owner: row.owner,
    attempt: row.takeovers + 1,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    leaseUntil: Number(row.lease_until),
    expiresAt: Number(row.expires_at),
    replayUntil: row.replay_until === null ? undefined : Number(row.replay_until),
    outcomeCode: row.outcome_code ?? undefined,
    // A plain Uint8Array view: callers compare and decode it like any other store's.
    outcome:
      row.outcome === null
        ? undefined
        : new Uint8Array(row.outcome.buffer, row.outcome.byteOffset, row.outcome.byteLength),
    readAt: Number(row.read_at),
  };
}

/** Converts the row a claim returned into a claim result. */
export function toClaimResult(row: ClaimRow): ClaimResult {
  const replaced = row.inserted ? "none" : row.takeovers > 0 ? "takeover" : "expired";
  return { kind: "claimed", replaced, record: toIdempotencyRecord(row) };
}

// PostgreSQL text cannot hold U+0000, nor a lone UTF-16 surrogate (Node
// sends one as U+FFFD, so "team\ud800" and "team\ufffd" would be one
// scope), yet keys are verbatim strings. U+0001 escapes: U+0000 is stored as
// U+0001 U+0002, U+0001 as U+0001 U+0001, and a lone surrogate as U+0001
// U+0003 and its code unit in four uppercase hex digits. Every JS string
// maps to its own stored value, and every other string, so every request
// ID and every ordinary scope, is stored as is and stays readable and
// searchable in SQL.
const escapeChar = "\u0001";
// A high surrogate not followed by a low one, or a low one not preceded by a high one.
const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const needsEscape = new RegExp(`[\\u0000\\u0001]|${loneSurrogate.source}`, "g");
// What `toPostgresText` writes for them.
// biome-ignore-start lint/suspicious/noControlCharactersInRegex: the escapes are control characters (see escapeChar).
const escaped = /\u0001(?:([\u0001\u0002])|\u0003([0-9A-F]{4}))/g;
// biome-ignore-end lint/suspicious/noControlCharactersInRegex: see above.

/** Encodes a scope, method or key for the text columns; see `fromPostgresText`. */
export function toPostgresText(value: string): string {
  needsEscape.lastIndex = 0;
  if (!needsEscape.test(value)) {
    return value;
  }
  needsEscape.lastIndex = 0;
  return value.replace(needsEscape, (char) => {
    if (char === escapeChar) return "\u0001\u0001";
    if (char === "\u0000") return "\u0001\u0002";
    return `\u0001\u0003${char.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
  });
}

/** Decodes what `toPostgresText` stored. */
export function fromPostgresText(value: string): string {
  if (!value.includes(escapeChar)) {
    return value;
  }
  return value.replace(escaped, (_, char: string | undefined, unit: string | undefined) =>
    unit !== undefined ? String.fromCharCode(Number.parseInt(unit, 16)) : char === escapeChar ? escapeChar : "\u0000",
  );
}
