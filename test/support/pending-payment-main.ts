// One payment by a Node process that keeps pending request IDs in a file, as
// a process under a supervisor would. Started by pending-request-ids.test.ts
// with its config as JSON in the first argument; prints the outcome as JSON.
import { createConnectTransport } from "@connectrpc/connect-node";
import { createPaymentServiceClient } from "../../gen/demo/v1/payments_idempotency.js";
import { callWithOutcome } from "../../src/client/index.js";
import { createFilePendingRequestIds } from "../../src/client/node/index.js";

const config = JSON.parse(process.argv[2] ?? "{}") as { baseUrl: string; file: string; amountMinor: string };
const client = createPaymentServiceClient(createConnectTransport({ baseUrl: config.baseUrl, httpVersion: "2" }), {
  pendingRequestIds: createFilePendingRequestIds(config.file),
});
const outcome = await callWithOutcome(client.createPayment, {
  accountId: "acct_restart",
  amountMinor: BigInt(config.amountMinor),
  currency: "EUR",
});
process.stdout.write(`${JSON.stringify({ requestId: outcome.requestId, replayed: outcome.replayed })}\n`);
