import { expiresHeader, firstExecutedAtHeader, replayedHeader } from "./idempotency-headers.js";

/** Whether an answer is a replay, as its response headers tell. */
export interface ReplayInfo {
  /**
   * True when the server did not run the call and answered with the stored
   * outcome of the first call with the same request ID. A payments client
   * must not book such an answer as a new charge.
   */
  readonly replayed: boolean;
  /**
   * When the first call with this request ID ran, on a replay whose server
   * sends `firstExecutedAtHeader`; undefined otherwise.
   */
  readonly firstExecutedAt: Date | undefined;
  /**
   * Until when the server replays this request ID's outcome
   * (`expiresHeader`, by its store's clock), on a first execution or a
   * replay; undefined when the server does not say.
   */
  readonly expiresAt: Date | undefined;
}

/**
 * Reads the replay headers of a response (`onHeader`, `UnaryResponse.header`)
 * or of an error (`ConnectError.metadata`). A browser sees them only when
 * the server's CORS configuration exposes `idempotencyExposedHeaders`.
 */
export function readReplayInfo(headers: Headers | undefined): ReplayInfo {
  const replayed = headers?.get(replayedHeader) === "true";
  const firstExecuted = replayed ? headers?.get(firstExecutedAtHeader) : null;
  const at = firstExecuted === null || firstExecuted === undefined ? Number.NaN : Date.parse(firstExecuted);
  const expires = Date.parse(headers?.get(expiresHeader) ?? "");
  return {
    replayed,
    firstExecutedAt: Number.isNaN(at) ? undefined : new Date(at),
    expiresAt: Number.isNaN(expires) ? undefined : new Date(expires),
  };
}
