/**
 * The response header that marks a replayed outcome: `true` when the handler
 * did not run for this call and the answer is the stored one of the first
 * call with the same request ID.
 */
export const replayedHeader = "idempotency-replayed";

/**
 * The response header that tells, on a replayed outcome, when the first call
 * with the same request ID ran: an RFC 3339 timestamp in UTC with
 * milliseconds, such as `2026-12-01T08:30:00.123Z`. Clients read it when the
 * server sends it; older servers do not.
 */
export const firstExecutedAtHeader = "idempotency-first-executed-at";

/**
 * The response header that tells until when the server replays the outcome
 * of this request ID: an RFC 3339 timestamp in UTC with milliseconds, by the
 * idempotency store's clock. Sent on the first execution and on every
 * replay, and on REQUEST_IN_PROGRESS errors (until when the running claim
 * holds the key if it never completes). Past it, a retry with the same
 * request ID may run the call again, so generated clients stop retrying
 * and fail with OUTCOME_UNKNOWN instead (`callWithRetry`).
 */
export const expiresHeader = "idempotency-expires";

/**
 * The response headers a browser client must be allowed to read, for a
 * server's CORS `Access-Control-Expose-Headers` next to Connect's own
 * `cors.exposedHeaders`. Without them a cross-origin page cannot tell a
 * replayed answer from a new one: `fetch` hides every header not listed.
 *
 * ```ts
 * import { cors } from "@connectrpc/connect";
 * import { idempotencyExposedHeaders } from "connect-idempotency/client";
 *
 * const exposedHeaders = [...cors.exposedHeaders, ...idempotencyExposedHeaders];
 * ```
 */
export const idempotencyExposedHeaders: readonly string[] = [replayedHeader, firstExecutedAtHeader, expiresHeader];
