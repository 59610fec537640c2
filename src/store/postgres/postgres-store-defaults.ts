// The defaults of createPostgresStore, shared with openPostgresStoreAdmin so
// that the admin finds the store's table and sweeps as the store does.

/** The default `schema`: `public`, PostgreSQL's own default schema. */
export const defaultPostgresSchema = "public";
/** The default `table`: `connect_idempotency_records`, the SQLite store's name too. */
export const defaultPostgresTable = "connect_idempotency_records";
/**
 * The default `maxConnections`: 10, node-postgres's own default pool size,
 * which a claim's one or two short statements rarely exhaust.
 */
export const defaultPostgresMaxConnections = 10;
/**
 * The default `statementTimeoutMs`: 5 s. The store's statements touch one
 * key each and take milliseconds; one that waits longer is stuck behind a
 * lock or an overloaded server, and failing its call beats holding it.
 */
export const defaultPostgresStatementTimeoutMs = 5_000;
/**
 * The default `connectionTimeoutMs`: 5 s to get a connection of the store's
 * own pool, so that an unreachable server fails calls rather than hang them.
 */
export const defaultPostgresConnectionTimeoutMs = 5_000;
/**
 * The default `sweepIntervalMs`: a minute between sweeps. Expired records
 * are invisible to claims whether swept or not, so sweeping only bounds the
 * table's size, and once a minute keeps each sweep small.
 */
export const defaultPostgresSweepIntervalMs = 60_000;
/**
 * The default `sweepBatchSize`: 1,000 records per delete statement, short
 * enough that a sweep never holds row locks long next to claims.
 */
export const defaultPostgresSweepBatchSize = 1_000;
