import * as http2 from "node:http2";
import { type ConnectNodeAdapterOptions, connectNodeAdapter } from "@connectrpc/connect-node";
import { type LoopbackListener, listenOnLoopback } from "../../src/testing/listen-on-loopback.js";

/** A connect-node server on loopback, started by `startHttp2Server`. */
export interface TestHttp2Server extends LoopbackListener {
  /** `http://127.0.0.1:<port>`, for transports. */
  readonly baseUrl: string;
}

/**
 * Starts an HTTP/2 (h2c) server on 127.0.0.1 and an ephemeral port that
 * serves the given routes through `connectNodeAdapter`, with the given
 * interceptors and other adapter options.
 */
export async function startHttp2Server(options: ConnectNodeAdapterOptions): Promise<TestHttp2Server> {
  const listener = await listenOnLoopback(http2.createServer(connectNodeAdapter(options)));
  return { ...listener, baseUrl: `http://127.0.0.1:${listener.port}` };
}
