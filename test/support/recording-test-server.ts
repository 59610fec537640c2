import { afterAll, beforeAll, beforeEach } from "vitest";
import { type SeenAttempt, createAttemptRecorder } from "./attempt-recorder.js";
import { type IdempotencyTestServer, startIdempotencyTestServer } from "./idempotency-test-server.js";

/** The server of a client test file, from `useRecordingTestServer`. */
export interface RecordingTestServer {
  /** The test server; there from the file's `beforeAll` on. */
  readonly server: IdempotencyTestServer;
  /** Every unary attempt that reached the server in the current test, before the interceptor decided on it. */
  readonly attempts: SeenAttempt[];
}

/**
 * Starts one idempotency test server for the calling test file, with an
 * attempt recorder in front of the interceptor, and closes it after the
 * file. Before each test the recorded attempts and handler runs are
 * emptied, so that a test sees only its own. Call it at the top of a file.
 */
export function useRecordingTestServer(): RecordingTestServer {
  const recorder = createAttemptRecorder();
  let server: IdempotencyTestServer | undefined;
  beforeAll(async () => {
    server = await startIdempotencyTestServer({ adapter: { interceptors: [recorder.interceptor] } });
  });
  afterAll(async () => {
    await server?.close();
  });
  beforeEach(() => {
    recorder.attempts.length = 0;
    if (server !== undefined) {
      server.runs.length = 0;
    }
  });
  return {
    get server() {
      if (server === undefined) {
        throw new Error("the recording test server is used before its beforeAll hook ran");
      }
      return server;
    },
    attempts: recorder.attempts,
  };
}
