// `connect-idempotency/protocol`: the machinery behind the interceptor, for
// authors of stores and tools that must read or write what it stores (outcome
// encoding, fingerprints, request ID forms, method policies, the error it
// raises).
//
// @private Internal code, does not follow semantic versioning: any release may
// change or remove these exports. End users import `connect-idempotency` and
// `connect-idempotency/client`.

export { createIdempotencyError, type IdempotencyErrorDetails } from "../errors/idempotency-error.js";
export { resolveMethodPolicy, type MethodIdempotencyPolicy, type RequestIdFormat } from "../policy/method-policy.js";
export { canonicalizeRequestId, type RequestIdCheck } from "../policy/request-id-format.js";
export { decodeStoredOutcome, encodeStoredOutcome, type StoredOutcomeValue } from "../server/stored-outcome.js";
export { fingerprintRequest } from "../server/request-fingerprint.js";
export { DERIVED_KEY_NAMESPACE } from "../server/derived-key.js";
