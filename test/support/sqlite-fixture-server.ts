// A FixtureService server behind the idempotency interceptor on a SQLite
// store, run as a child process by the SQLite hardening tests (see
// server-process.ts). Configured by environment variables:
//
// - SQLITE_PATH: the database file. BUSY_TIMEOUT_MS: the store's busyTimeoutMs.
// - EVENTS_FILE: every `store_error` event and every store problem appends a
//   JSON line `{"type", "operation"?, "message"}` to it.
//
// `Opaque` answers `text` = `<pid>` and `executions` = how often this process
// ran the handler for the request ID; `Plain` never touches the store.
// Prints `listening <port>` once it serves.
import { appendFileSync } from "node:fs";
import { FixtureService } from "../../gen/fixture/v1/fixture_pb.js";
import { createIdempotencyInterceptor } from "../../src/index.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { startHttp2Server } from "./http2-server.js";

const eventsFile = process.env.EVENTS_FILE;
const record = (line: Record<string, unknown>) => {
  if (eventsFile) appendFileSync(eventsFile, `${JSON.stringify(line)}\n`);
};
const store = createSqliteStore({
  path: process.env.SQLITE_PATH ?? "",
  sweepIntervalMs: 0,
  ...(process.env.BUSY_TIMEOUT_MS ? { busyTimeoutMs: Number(process.env.BUSY_TIMEOUT_MS) } : {}),
  onProblem: (problem) => record({ type: `problem:${problem.kind}`, message: problem.message }),
});
const runs = new Map<string, number>();
const server = await startHttp2Server({
  interceptors: [
    createIdempotencyInterceptor({
      store,
      onEvent(event) {
        if (event.type === "store_error") {
          const error = event.error;
          record({
            type: event.type,
            operation: event.operation,
            message: error instanceof Error ? error.message : String(error),
          });
        }
      },
    }),
  ],
  routes(router) {
    router.service(FixtureService, {
      opaque(req) {
        const executions = (runs.get(req.key) ?? 0) + 1;
        runs.set(req.key, executions);
        return { text: String(process.pid), executions };
      },
      plain: (req) => ({ text: req.text }),
      async upload() {
        return { size: 0n };
      },
    });
  },
});
process.stdout.write(`listening ${server.port}\n`);
