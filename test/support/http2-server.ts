import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { type ConnectNodeAdapterOptions, connectNodeAdapter } from "@connectrpc/connect-node";

/** A connect-node server on loopback, started by `startHttp2Server`. */
export interface TestHttp2Server {
  /** `http://127.0.0.1:<port>`, for transports. */
  readonly baseUrl: string;
  /** The port the server listens on. */
  readonly port: number;
  /**
   * Destroys the open HTTP/2 sessions and closes the server. Without the
   * first step `close()` waits for the sessions connect-node clients keep
   * open, and test hooks time out. Safe to call more than once.
   */
  close(): Promise<void>;
}

/**
 * Starts an HTTP/2 (h2c) server on 127.0.0.1 and an ephemeral port that
 * serves the given routes through `connectNodeAdapter`, with the given
 * interceptors and other adapter options.
 */
export async function startHttp2Server(options: ConnectNodeAdapterOptions): Promise<TestHttp2Server> {
  const server = http2.createServer(connectNodeAdapter(options));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closed: Promise<void> | undefined;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    port,
    close() {
      closed ??= new Promise<void>((resolve) => {
        for (const session of sessions) {
          session.destroy();
        }
        server.close(() => resolve());
      });
      return closed;
    },
  };
}
