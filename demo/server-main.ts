// The demo server as a child process of `npm start`, so that the demo can
// kill it with SIGKILL. Started by server-process.ts; not meant to be run by hand.
import type { IdempotencyEventType } from "../src/server/idempotency-event.js";
import { createSeededRandom } from "../src/testing/seeded-random.js";
import { createBankLinkInterceptor } from "./bank-link.js";
import { startDemoServer } from "./demo-server.js";
import type { ServerProcessConfig, ServerProcessMessage } from "./server-process.js";

// Only what the demo reports crosses the process boundary.
const reported = new Set<IdempotencyEventType>([
  "replayed",
  "waited",
  "conflict",
  "takeover",
  "mismatch",
  "store_error",
]);

const send = (message: ServerProcessMessage) => process.send?.(message);
const config = JSON.parse(process.argv[2] ?? "{}") as ServerProcessConfig;
const server = await startDemoServer({
  dataDir: config.dataDir,
  port: config.port,
  idempotency: config.idempotency,
  leaseMs: config.leaseMs,
  ...(config.postgres === undefined ? {} : { postgres: config.postgres }),
  bankInterceptors: [
    createBankLinkInterceptor({
      latencyMs: config.bankLatencyMs,
      timeoutRate: config.bankTimeoutRate,
      random: createSeededRandom(config.seed),
      onTimeout: (reference) => send({ kind: "bank_timeout", reference }),
    }),
  ],
  onEvent(service, event) {
    if (reported.has(event.type)) {
      send({ kind: "event", service, type: event.type });
    }
  },
});
// Its wall clock, to show that --skew took effect.
send({ kind: "ready", port: server.port, clock: Date.now() });

const stop = () => {
  void server.close().then(() => process.exit(0));
};
process.once("SIGTERM", stop);
// The parent is gone (it crashed, or a test ended): do not linger.
process.once("disconnect", stop);
