// A PaymentService server behind the idempotency interceptor for the fault
// tests (test/faults), run as a child process with `startServerProcess`.
// Configured by environment variables:
//
// - NAME: names the process in payment IDs, `pay_<NAME>_<n>` (n counts the
//   handler executions of this process).
// - IDEMPOTENCY_STORE: "sqlite" or "postgres".
// - SQLITE_PATH, SQLITE_BUSY_TIMEOUT_MS: the SQLite file and busy timeout.
// - POSTGRES_URL, POSTGRES_SCHEMA, POSTGRES_TABLE,
//   POSTGRES_STATEMENT_TIMEOUT_MS, POSTGRES_CONNECTION_TIMEOUT_MS,
//   POSTGRES_MAX_CONNECTIONS: the PostgreSQL store.
// - LEASE_MS, LEASE_GRACE_MS, MAX_WAIT_MS, RETENTION_MS, TOMBSTONE_RETENTION_MS: interceptor options.
// - EXECUTIONS_FILE: every handler execution appends a line
//   `<request id>\t<NAME>\t<payment id>\t<attempt>\t<takeover>` to it before
//   anything else (the "charge").
// - FIRST_DELAY_MS: the first execution of this process awaits this long.
// - FIRST_BLOCK_MS: the first execution of this process blocks its event
//   loop this long (a busy loop), BLOCK_AFTER_MS (default 500) after it
//   charged.
// - metadata["delay_ms"] of a request: every execution awaits this long.
//
// Every interceptor event is printed on stdout as
// `event\t<type>\t<operation>\t<keyHash>`, so the test can count them.
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
const name = env.NAME ?? String(process.pid);
const store = await openStore();
let executions = 0;

function charge(requestId: string, ctx: HandlerContext): { paymentId: string; first: boolean } {
  executions += 1;
  const paymentId = `pay_${name}_${executions}`;
  const context = ctx.values.get(idempotencyContext);
  if (env.EXECUTIONS_FILE) {
    appendFileSync(
      env.EXECUTIONS_FILE,
      `${requestId}\t${name}\t${paymentId}\t${context?.attempt ?? ""}\t${context?.takeover ?? ""}\n`,
    );
  }
  return { paymentId, first: executions === 1 };
}

const server = await startHttp2Server({
  interceptors: [
    createIdempotencyInterceptor({
      store,
      leaseMs: optionalNumber("LEASE_MS"),
      leaseGraceMs: optionalNumber("LEASE_GRACE_MS"),
      maxWaitMs: optionalNumber("MAX_WAIT_MS"),
      retentionMs: optionalNumber("RETENTION_MS"),
      tombstoneRetentionMs: optionalNumber("TOMBSTONE_RETENTION_MS"),
      telemetry: false,
      onEvent(event) {
        process.stdout.write(`event\t${event.type}\t${event.operation ?? ""}\t${event.keyHash}\n`);
      },
    }),
  ],
  routes(router) {
    router.service(PaymentService, {
      async createPayment(req, ctx) {
        const { paymentId, first } = charge(req.requestId, ctx);
        if (first && env.FIRST_DELAY_MS) {
          await delay(Number(env.FIRST_DELAY_MS));
        }
        if (first && env.FIRST_BLOCK_MS) {
          await delay(optionalNumber("BLOCK_AFTER_MS") ?? 500);
          const until = Date.now() + Number(env.FIRST_BLOCK_MS);
          while (Date.now() < until) {
            // The event loop is blocked: no renewal, no I/O, as in a long GC
            // pause or a synchronous computation.
          }
        }
        await delay(Number(req.metadata.delay_ms ?? 0));
        return create(CreatePaymentResponseSchema, {
          payment: { paymentId, accountId: req.accountId, amountMinor: req.amountMinor, currency: req.currency },
        });
      },
      refundPayment(req, ctx) {
        const { paymentId } = charge(req.requestId, ctx);
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
  switch (env.IDEMPOTENCY_STORE) {
    case "sqlite":
      return createSqliteStore({
        path: required("SQLITE_PATH"),
        busyTimeoutMs: optionalNumber("SQLITE_BUSY_TIMEOUT_MS"),
      });
    case "postgres": {
      const postgres = await createPostgresStore({
        connectionString: required("POSTGRES_URL"),
        schema: env.POSTGRES_SCHEMA,
        table: env.POSTGRES_TABLE,
        statementTimeoutMs: optionalNumber("POSTGRES_STATEMENT_TIMEOUT_MS"),
        connectionTimeoutMs: optionalNumber("POSTGRES_CONNECTION_TIMEOUT_MS"),
        maxConnections: optionalNumber("POSTGRES_MAX_CONNECTIONS"),
      });
      // A restart or a cut connection must not crash the process: the store
      // reports its failures through the interceptor.
      postgres.pool.on("error", () => {});
      return postgres;
    }
    default:
      throw new Error(`unknown IDEMPOTENCY_STORE ${env.IDEMPOTENCY_STORE}`);
  }
}
