// A PaymentService server behind the idempotency interceptor on a SQLite
// file, run as a child process by the fault tests (see server-process.ts).
// Configured by environment variables:
//
// - SQLITE_PATH: the database file. BUSY_TIMEOUT_MS: the store's busy timeout.
// - LEASE_MS: the interceptor's lease (passed as given, so that a bad value
//   reaches the interceptor's check).
// - EXECUTIONS_FILE: every handler execution appends a line
//   `<request id>\t<pid>\t<attempt>\t<takeover>` to it before anything else.
// - HANDLER_MS: CreatePayment answers after this long; -1 never answers (a
//   process to SIGKILL mid-handler).
//
// Prints `listening <port>` once it serves. A configuration the interceptor
// refuses makes it exit with code 2 and the error on stderr, never serving.
import { appendFileSync } from "node:fs";
import { setTimeout as delay } from "node:timers/promises";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { createIdempotencyInterceptor, idempotencyContext } from "../../src/index.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { startHttp2Server } from "./http2-server.js";

const env = process.env;
const store = createSqliteStore({
  path: env.SQLITE_PATH ?? "",
  ...(env.BUSY_TIMEOUT_MS ? { busyTimeoutMs: Number(env.BUSY_TIMEOUT_MS) } : {}),
});
const handlerMs = Number(env.HANDLER_MS ?? 0);

let interceptor: ReturnType<typeof createIdempotencyInterceptor>;
try {
  interceptor = createIdempotencyInterceptor({
    store,
    ...(env.LEASE_MS ? { leaseMs: Number(env.LEASE_MS) } : {}),
  });
} catch (error) {
  process.stderr.write(`refused: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(2);
}

let executions = 0;
const server = await startHttp2Server({
  interceptors: [interceptor],
  routes(router) {
    router.service(PaymentService, {
      async createPayment(req, ctx) {
        executions += 1;
        const context = ctx.values.get(idempotencyContext);
        if (env.EXECUTIONS_FILE) {
          appendFileSync(
            env.EXECUTIONS_FILE,
            `${req.requestId}\t${process.pid}\t${context?.attempt}\t${context?.takeover}\n`,
          );
        }
        await (handlerMs < 0 ? new Promise(() => {}) : delay(handlerMs));
        return { payment: { paymentId: `pay_${process.pid}_${executions}` } };
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
