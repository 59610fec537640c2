import type * as http from "node:http";
import * as http2 from "node:http2";
import { cors } from "@connectrpc/connect";
import { idempotencyExposedHeaders, replayedHeader } from "../../src/client/index.js";
import type { NetworkAttempt, NetworkFaults } from "./network-faults.js";

/** Options of `createFlakyRpcProxy`. */
export interface FlakyRpcProxyOptions {
  /** The h2c server of the services, such as `http://127.0.0.1:8080`. */
  readonly upstream: string;
  /** The switches, read on every request: the page changes them while it runs. */
  readonly faults: NetworkFaults;
  /** Receives every RPC and what the network did with it. */
  readonly onAttempt: (attempt: NetworkAttempt) => void;
}

/** The HTTP/1.1 edge of the checkout, from `createFlakyRpcProxy`. */
export interface FlakyRpcProxy {
  /** Handles one request of the HTTP/1.1 server. */
  readonly handle: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  /** Closes the connection to the upstream. */
  close(): void;
}

// Headers that belong to one hop, or that HTTP/2 refuses.
const hopByHop = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "host",
  "te",
  "proxy-connection",
]);

/**
 * The edge a browser talks to: HTTP/1.1 with CORS in front of the h2c
 * services (browsers do not speak h2c), and a network that fails on demand.
 * A dropped answer is dropped after the server ran the call; a reset
 * connection never reaches it. Every response says `connection: close`, so
 * that Chromium never resends a request on its own over a reused socket.
 *
 * CORS uses Connect's helpers plus `idempotencyExposedHeaders`, which the
 * `exposeIdempotencyHeaders` switch leaves out to show what a page then misses.
 */
export function createFlakyRpcProxy(options: FlakyRpcProxyOptions): FlakyRpcProxy {
  const { faults } = options;
  let session: http2.ClientHttp2Session | undefined;
  const upstream = () => {
    if (session === undefined || session.closed || session.destroyed) {
      session = http2.connect(options.upstream);
      session.on("error", () => undefined);
    }
    return session;
  };
  const corsHeaders = (origin: string | undefined): Record<string, string> => ({
    "access-control-allow-origin": origin ?? "*",
    vary: "origin",
    "access-control-expose-headers": [
      ...cors.exposedHeaders,
      ...(faults.exposeIdempotencyHeaders ? idempotencyExposedHeaders : []),
    ].join(", "),
  });
  const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const origin = req.headers.origin;
    if (req.method === "OPTIONS") {
      res.writeHead(204, {
        ...corsHeaders(origin),
        "access-control-allow-methods": cors.allowedMethods.join(", "),
        "access-control-allow-headers": cors.allowedHeaders.join(", "),
        "access-control-max-age": "600",
        connection: "close",
      });
      res.end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const path = req.url ?? "/";
      const requestId = requestIdOf(body, req.headers["content-type"]);
      const report = (fate: NetworkAttempt["fate"], replayed = false) =>
        options.onAttempt({ path, requestId, fate, replayed, at: Date.now() });
      if (faults.resetConnections > 0) {
        faults.resetConnections--;
        report("connection reset");
        req.socket.destroy();
        return;
      }
      const headers: http2.OutgoingHttpHeaders = { ":method": req.method ?? "POST", ":path": path };
      for (const [name, value] of Object.entries(req.headers)) {
        if (!hopByHop.has(name) && value !== undefined) {
          headers[name] = value;
        }
      }
      const call = upstream().request(headers);
      call.on("error", () => {
        if (!res.headersSent) {
          res.writeHead(502, { ...corsHeaders(origin), connection: "close" }).end();
        }
      });
      call.on("response", (answer) => {
        const answerChunks: Buffer[] = [];
        call.on("data", (chunk: Buffer) => answerChunks.push(chunk));
        call.on("end", () => {
          const replayed = answer[replayedHeader] === "true";
          if (faults.dropAnswers > 0) {
            faults.dropAnswers--;
            report("answer dropped", replayed);
            req.socket.destroy();
            return;
          }
          const send = () => {
            const out: Record<string, string | string[]> = { ...corsHeaders(origin), connection: "close" };
            for (const [name, value] of Object.entries(answer)) {
              if (!name.startsWith(":") && !hopByHop.has(name) && value !== undefined) {
                out[name] = typeof value === "number" ? String(value) : value;
              }
            }
            report("answered", replayed);
            res.writeHead(Number(answer[":status"] ?? 200), out);
            res.end(Buffer.concat(answerChunks));
          };
          // Held after the server ran: the page can reload while the charge is already made.
          if (faults.holdAnswerMs > 0) {
            setTimeout(send, faults.holdAnswerMs);
          } else {
            send();
          }
        });
      });
      call.end(body);
    });
  };
  return {
    handle,
    close() {
      session?.close();
    },
  };
}

// connect-web sends JSON by default; a binary body has no ID to show.
function requestIdOf(body: Buffer, contentType: string | undefined): string {
  if (contentType?.startsWith("application/json") !== true) {
    return "";
  }
  try {
    const parsed: unknown = JSON.parse(body.toString("utf8"));
    return typeof parsed === "object" &&
      parsed !== null &&
      "requestId" in parsed &&
      typeof parsed.requestId === "string"
      ? parsed.requestId
      : "";
  } catch {
    return "";
  }
}
