import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { Http2SessionManager } from "@connectrpc/connect-node";
import { createConnectTransport } from "@connectrpc/connect-node";
import { CreatePaymentResponseSchema, PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { findErrorReason } from "../../src/errors/idempotency-error.js";
import { decodeStoredOutcome } from "../../src/server/stored-outcome.js";
import type { IdempotencyStore } from "../../src/store/idempotency-store.js";
import { type ServerProcess, startServerProcess } from "./server-process.js";

/** The fault tests' server process (see the comment at its top for its environment). */
export const faultServerScript = fileURLToPath(new URL("./fault-payment-server.ts", import.meta.url));

/** The method the fault tests call. */
export const createPaymentMethod = "demo.v1.PaymentService/CreatePayment";

/** Starts fault-payment-server.ts with `env`; optionally under a wrapper environment (LD_PRELOAD). */
export function startFaultServer(env: Record<string, string>): Promise<ServerProcess> {
  return startServerProcess({ script: faultServerScript, env, startTimeoutMs: 30_000 });
}

/** A PaymentService client on its own HTTP/2 session, which `close` ends. */
export interface PaymentClient {
  readonly client: Client<typeof PaymentService>;
  close(): void;
}

/** Creates a client of one server process (Connect protocol, binary). */
export function paymentClient(baseUrl: string): PaymentClient {
  const sessionManager = new Http2SessionManager(baseUrl);
  const transport = createConnectTransport({ baseUrl, httpVersion: "2", sessionManager });
  return { client: createClient(PaymentService, transport), close: () => sessionManager.abort() };
}

/** A CreatePayment request of the fault tests; `delayMs` keeps every execution of it in flight that long. */
export function payment(requestId: string, delayMs = 0) {
  return {
    requestId,
    accountId: "acct_1",
    amountMinor: 100n,
    currency: "EUR",
    metadata: { delay_ms: String(delayMs) },
  };
}

/**
 * What one call ended with, as a comparable string: `ok <payment id>` or
 * `<Code> <reason>` (the ErrorInfo reason, or the message when there is none).
 */
export async function answerOf(call: Promise<{ payment?: { paymentId: string } }>): Promise<string> {
  try {
    const response = await call;
    return `ok ${response.payment?.paymentId}`;
  } catch (error) {
    const e = ConnectError.from(error);
    return `${Code[e.code]} ${findErrorReason(e) ?? e.rawMessage}`;
  }
}

/** The answer a caller gets while another execution holds the key. */
export const inProgress = "Aborted REQUEST_IN_PROGRESS";

/** One handler execution, from the EXECUTIONS_FILE of fault-payment-server.ts. */
export interface Execution {
  readonly requestId: string;
  readonly process: string;
  readonly paymentId: string;
  readonly attempt: string;
  readonly takeover: string;
}

/** Every handler execution the server processes recorded in `file`. */
export function readExecutions(file: string): Execution[] {
  if (!existsSync(file)) {
    return [];
  }
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => {
      const [requestId = "", process = "", paymentId = "", attempt = "", takeover = ""] = line.split("\t");
      return { requestId, process, paymentId, attempt, takeover };
    });
}

/** How many executions each of `keys` had, in the order of `keys`. */
export function executionsPerKey(file: string, keys: readonly string[]): number[] {
  const executions = readExecutions(file);
  return keys.map((key) => executions.filter((e) => e.requestId === key).length);
}

/** Counts the interceptor events a fault server printed, by `type` (and `type/operation`). */
export function eventCounts(server: ServerProcess): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const line of server.stdout().split("\n")) {
    const [tag, type, operation] = line.split("\t");
    if (tag !== "event" || type === undefined) {
      continue;
    }
    counts[type] = (counts[type] ?? 0) + 1;
    if (operation) {
      counts[`${type}/${operation}`] = (counts[`${type}/${operation}`] ?? 0) + 1;
    }
  }
  return counts;
}

/**
 * The outcome a store holds for a CreatePayment request ID, in the form of
 * `answerOf`: `ok <payment id>` or `<Code> <message>`; `in_progress` (or the
 * record's status) while it has none, `absent` without a record.
 */
export async function storedAnswer(store: IdempotencyStore, requestId: string): Promise<string> {
  const record = await store.get({ scope: "", method: createPaymentMethod, key: requestId });
  if (record === undefined) {
    return "absent";
  }
  if (record.status !== "completed" || record.outcome === undefined) {
    return record.status;
  }
  const outcome = decodeStoredOutcome(record.outcome);
  if (outcome.kind === "error") {
    return `${Code[outcome.error.code]} ${findErrorReason(outcome.error) ?? outcome.error.rawMessage}`;
  }
  if (outcome.kind === "executed") {
    return `executed ${outcome.resourceName}`;
  }
  return `ok ${fromBinary(CreatePaymentResponseSchema, outcome.response).payment?.paymentId}`;
}

/** Kills every process of `servers` (SIGKILL) and closes every client of `clients`. */
export async function stopAll(servers: ServerProcess[], clients: PaymentClient[]): Promise<void> {
  for (const client of clients.splice(0)) {
    client.close();
  }
  await Promise.all(servers.splice(0).map((server) => server.kill("SIGKILL")));
}
