// demo.v1.PaymentService behind the idempotency interceptor, as a child
// process that kills itself with SIGKILL at a named boundary of
// CreatePayment, for the crash tests (run through test/support/server-process.ts).
// Configured by environment variables:
//
// - SQLITE_PATH: the payments database: idempotency records and `payments`.
// - BANK_URL: the bank (demo.v1.BankService) the payments charge.
// - LEASE_MS: the interceptor's lease, short so that a retry takes over soon.
// - HANDLER: "atomic" runs the demo's CreatePayment (phase "charge", then
//   commit); "plain" a handler that writes its row and returns, leaving the
//   completion to the interceptor.
// - CRASH_AT: where the first CreatePayment dies:
//   - "after-charge": the bank answered, before anything is recorded;
//   - "after-write": the payment row is written, before the key completes
//     (atomic: inside the commit transaction; plain: the row is committed);
//   - "after-complete": the key completed, before the response is sent.
//   Unset: never. A restarted server is started without it.
//
// Prints `listening <port>` once it serves.
import { type Interceptor, type ServiceImpl, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { BankService } from "../../../gen/demo/v1/bank_pb.js";
import { PaymentService } from "../../../gen/demo/v1/payments_pb.js";
import { createPaymentServiceImpl } from "../../../demo/payment-service.js";
import { createIdempotencyInterceptor, idempotencyContext } from "../../../src/index.js";
import { createSqliteStore } from "../../../src/store/sqlite/sqlite-store.js";
import { startHttp2Server } from "../../support/http2-server.js";
import { requiredEnv as required } from "../../support/process-env.js";

/** The boundaries a crash test can kill the server at. */
export type CrashBoundary = "after-charge" | "after-write" | "after-complete";

const env = process.env;
const crashAt = (env.CRASH_AT ?? "") as CrashBoundary | "";
// A 1 s lease must outlast three busy waits.
const store = createSqliteStore({ path: required("SQLITE_PATH"), sweepIntervalMs: 0, busyTimeoutMs: 300 });

function crash(): never {
  process.kill(process.pid, "SIGKILL");
  throw new Error("unreachable: SIGKILL does not return");
}

/** Kills the process once the call it wraps has answered. */
const crashAfter: Interceptor = (next) => async (req) => {
  const res = await next(req);
  crash();
  return res;
};

const bank = createClient(
  BankService,
  createConnectTransport({
    baseUrl: required("BANK_URL"),
    httpVersion: "2",
    interceptors: crashAt === "after-charge" ? [crashAfter] : [],
  }),
);

const payments = env.HANDLER === "plain" ? plainPaymentService() : createPaymentServiceImpl({ ledger: store, bank });

if (crashAt === "after-write" && env.HANDLER !== "plain") {
  // Inside the commit transaction, right after the payment row: a TEMP
  // trigger lives on this connection only, never in the file.
  store.database.function("crash_now", () => crash());
  store.database.exec(
    "CREATE TEMP TRIGGER crash_after_write AFTER INSERT ON main.payments BEGIN SELECT crash_now(); END",
  );
}

const server = await startHttp2Server({
  interceptors: [
    ...(crashAt === "after-complete" ? [crashAfter] : []),
    createIdempotencyInterceptor({ store, leaseMs: Number(required("LEASE_MS")), leaseGraceMs: 500 }),
  ],
  routes(router) {
    router.service(PaymentService, payments);
  },
});
process.stdout.write(`listening ${server.port}\n`);

/**
 * A handler without `commit`: it writes its row, then returns, and the
 * interceptor completes the key afterwards, in another transaction.
 */
function plainPaymentService(): Partial<ServiceImpl<typeof PaymentService>> {
  store.database.exec("CREATE TABLE IF NOT EXISTS payments (payment_id TEXT PRIMARY KEY, request_id TEXT NOT NULL)");
  const insert = store.database.prepare<[string, string]>(
    "INSERT INTO payments (payment_id, request_id) VALUES (?, ?)",
  );
  let n = 0;
  return {
    async createPayment(req, ctx) {
      const key = ctx.values.get(idempotencyContext)?.key ?? req.requestId;
      const paymentId = `pay_${process.pid}_${++n}`;
      await store.executor.run(() => insert.run(paymentId, key));
      if (crashAt === "after-write") {
        crash();
      }
      return { payment: { paymentId, accountId: req.accountId, amountMinor: req.amountMinor, currency: req.currency } };
    },
  };
}
