import type * as http2 from "node:http2";
import type { AddressInfo } from "node:net";

/** An HTTP/2 server listening on 127.0.0.1, from `listenOnLoopback`. */
export interface LoopbackListener {
  /** The port the server listens on. */
  readonly port: number;
  /**
   * Destroys the open HTTP/2 sessions and closes the server. Without the
   * first step `close()` waits for the sessions that connect-node clients
   * keep open for reuse, and a test hook or a demo shutdown hangs. Safe to
   * call more than once.
   */
  close(): Promise<void>;
}

/**
 * Makes an h2c server listen on 127.0.0.1 and `port` (0 picks a free one),
 * keeping track of its sessions from the first one on, so that `close`
 * can end them. Rejects when the port cannot be bound.
 */
export async function listenOnLoopback(server: http2.Http2Server, port = 0): Promise<LoopbackListener> {
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  let closed: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
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
