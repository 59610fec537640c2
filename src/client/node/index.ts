// `connect-idempotency/client/node`: client parts that need Node.js, kept out
// of `connect-idempotency/client` so that browser bundles never see them.

export { createFilePendingRequestIds, type FilePendingRequestIdsOptions } from "./file-pending-request-ids.js";
