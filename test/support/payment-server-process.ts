// A PaymentService server behind the idempotency interceptor, run as a child
// process by multi-process tests (see server-process.ts). Configured by
// environment variables:
//
// - IDEMPOTENCY_STORE: "sqlite" (default) or "postgres".
// - SQLITE_PATH: the database file (sqlite). SQLITE_DURABILITY: normal|full.
// - POSTGRES_URL, POSTGRES_SCHEMA: the database and schema (postgres).
// - LEASE_MS, MAX_WAIT_MS, RETENTION_MS: interceptor options.
// - EXECUTIONS_FILE: every handler execution appends a line
//   `<method>\t<request id>\t<pid>\t<takeover>` to it, before it does
//   anything else.
// - HANDLER_DELAY_MS: CreatePayment sleeps this long, plus
//   `metadata["delay_ms"]` of the request, before answering: keeps an
//   execution in flight (a process to SIGKILL mid-handler sets it high).
//
// The payment ID names the process that ran the handler: `pay_<pid>_<n>`.
// Prints `listening <port>` once it serves; exits cleanly on SIGTERM.
import { appendFileSync } from "node:fs";
import { setTimeout as delay } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import {
  CreatePaymentResponseSchema,
  GetPaymentResponseSchema,
  PaymentService,
  RefundPaymentResponseSchema,
} from "../../gen/demo/v1/payments_pb.js";
import { createIdempotencyInterceptor, idempotencyContext } from "../../src/index.js";
import type { IdempotencyStore } from "../../src/store/idempotency-store.js";
import { createPostgresStore } from "../../src/store/postgres/postgres-store.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { startHttp2Server } from "./http2-server.js";
import { optionalNumberEnv as optionalNumber, requiredEnv as required } from "./process-env.js";

const env = process.env;
const store = await openStore();
const handlerDelayMs = optionalNumber("HANDLER_DELAY_MS") ?? 0;
let executions = 0;

function recordExecution(method: string, requestId: string, ctx: HandlerContext): string {
  executions += 1;
  const takeover = ctx.values.get(idempotencyContext)?.takeover ?? false;
  if (env.EXECUTIONS_FILE) {
    appendFileSync(env.EXECUTIONS_FILE, `${method}\t${requestId}\t${process.pid}\t${takeover}\n`);
  }
  return `pay_${process.pid}_${executions}`;
}

const server = await startHttp2Server({
  interceptors: [
    createIdempotencyInterceptor({
      store,
      leaseMs: optionalNumber("LEASE_MS"),
      maxWaitMs: optionalNumber("MAX_WAIT_MS"),
      retentionMs: optionalNumber("RETENTION_MS"),
    }),
  ],
  routes(router) {
    router.service(PaymentService, {
      async createPayment(req, ctx) {
        const paymentId = recordExecution("CreatePayment", req.requestId, ctx);
        await delay(handlerDelayMs + Number(req.metadata.delay_ms ?? 0));
        return create(CreatePaymentResponseSchema, {
          payment: { paymentId, accountId: req.accountId, amountMinor: req.amountMinor, currency: req.currency },
        });
      },
      refundPayment(req, ctx) {
        const paymentId = recordExecution("RefundPayment", req.requestId, ctx);
        return create(RefundPaymentResponseSchema, { payment: { paymentId, refundedMinor: req.amountMinor } });
      },
      getPayment(req) {
        return create(GetPaymentResponseSchema, { payment: { paymentId: req.paymentId } });
      },
    });
  },
});

process.once("SIGTERM", () => {
  void server
    .close()
    .then(() => store.close())
    .then(() => process.exit(0));
});
process.stdout.write(`listening ${server.port}\n`);

async function openStore(): Promise<IdempotencyStore> {
  switch (env.IDEMPOTENCY_STORE ?? "sqlite") {
    case "sqlite":
      return createSqliteStore({
        path: required("SQLITE_PATH"),
        durability: env.SQLITE_DURABILITY === "full" ? "full" : "normal",
        // Short leases need short busy waits (the lease must outlast three).
        busyTimeoutMs:
          optionalNumber("BUSY_TIMEOUT_MS") ?? Math.min(5_000, Math.floor((optionalNumber("LEASE_MS") ?? 30_000) / 3)),
      });
    case "postgres":
      return createPostgresStore({ connectionString: required("POSTGRES_URL"), schema: env.POSTGRES_SCHEMA });
    default:
      throw new Error(`unknown IDEMPOTENCY_STORE ${env.IDEMPOTENCY_STORE}`);
  }
}
