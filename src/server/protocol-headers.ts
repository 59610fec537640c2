import { expiresHeader, firstExecutedAtHeader, replayedHeader } from "../client/idempotency-headers.js";

// Defined with the client, which browsers import without the server.
export { expiresHeader, firstExecutedAtHeader, replayedHeader };

const protocolHeaders = new Set([
  "content-type",
  "content-length",
  "content-encoding",
  "accept-encoding",
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
  "grpc-encoding",
  "grpc-accept-encoding",
  "grpc-timeout",
  "date",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "te",
  replayedHeader,
  firstExecutedAtHeader,
  expiresHeader,
]);

/**
 * Whether a header or trailer belongs to the wire protocol rather than the
 * handler. Such headers are never stored: a replay gets the ones its own
 * protocol, codec and compression need, which may differ from the first
 * call's.
 */
export function isProtocolHeader(name: string): boolean {
  const lower = name.toLowerCase();
  return protocolHeaders.has(lower) || lower.startsWith("connect-") || lower.startsWith("trailer-");
}
