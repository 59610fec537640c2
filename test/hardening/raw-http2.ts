import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { trailerParse } from "@connectrpc/connect/protocol-grpc-web";

/** The wire protocols a raw request can speak. */
export type RawProtocol = "connect" | "grpc" | "grpc-web";

/** What the server sent back for one raw HTTP/2 request. */
export interface RawResponse {
  /** The HTTP status, 0 when the stream closed before any headers. */
  readonly status: number;
  readonly headers: http2.IncomingHttpHeaders;
  /** Empty when the server sent no trailers (a trailers-only gRPC answer puts them in `headers`). */
  readonly trailers: http2.IncomingHttpHeaders;
  readonly body: Buffer;
  /** Set when the stream was reset before the server's answer ended (an RST_STREAM code other than NO_ERROR). */
  readonly resetCode: number | undefined;
  /** From sending the headers to the stream's close. */
  readonly elapsedMs: number;
}

/** One raw request: the pseudo and regular headers, then the body, sent in one go or in chunks. */
export interface RawRequest {
  readonly headers: http2.OutgoingHttpHeaders;
  readonly body: Uint8Array | readonly Uint8Array[];
}

/**
 * Sends one request on an open session and resolves once its stream closed.
 * Rejects when the stream stays open longer than `timeoutMs` (the stream is
 * then cancelled): a hang guard, not a speed assertion.
 */
export function sendRaw(
  session: http2.ClientHttp2Session,
  request: RawRequest,
  timeoutMs: number,
): Promise<RawResponse> {
  const started = performance.now();
  return new Promise<RawResponse>((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ...request.headers });
    let status = 0;
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`no answer within ${timeoutMs} ms to ${String(request.headers[":path"])}`));
    }, timeoutMs);
    stream.on("response", (h) => {
      headers = h;
      status = Number(h[":status"] ?? 0);
    });
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    // The server may answer before it read the whole body (an oversized one):
    // it then reads no more, and flow control would hold the rest of the body,
    // and the stream, forever. Cancel the rest, as connect-es clients do.
    let cancelledByUs = false;
    stream.on("end", () =>
      setImmediate(() => {
        if (!stream.closed) {
          cancelledByUs = true;
          stream.close(http2.constants.NGHTTP2_CANCEL);
        }
      }),
    );
    // A reset by the server surfaces as an error first; the close that follows settles.
    stream.on("error", () => {});
    stream.on("close", () => {
      clearTimeout(timer);
      resolve({
        status,
        headers,
        trailers,
        body: Buffer.concat(chunks),
        resetCode: cancelledByUs || stream.rstCode === http2.constants.NGHTTP2_NO_ERROR ? undefined : stream.rstCode,
        elapsedMs: performance.now() - started,
      });
    });
    const parts = request.body instanceof Uint8Array ? [request.body] : request.body;
    for (const part of parts) {
      stream.write(part);
    }
    stream.end();
  });
}

/** A gRPC / gRPC-Web / Connect-streaming envelope: flags, a 4-byte length, the payload. */
export function envelope(payload: Uint8Array, flags = 0, declaredLength = payload.byteLength): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(flags, 0);
  header.writeUInt32BE(declaredLength, 1);
  return Buffer.concat([header, payload]);
}

/** The request headers of a unary call on `path` for a protocol and codec, with an optional request encoding. */
export function unaryHeaders(
  protocol: RawProtocol,
  path: string,
  options: { readonly binary: boolean; readonly encoding?: string; readonly extra?: http2.OutgoingHttpHeaders },
): http2.OutgoingHttpHeaders {
  const codec = options.binary ? "proto" : "json";
  switch (protocol) {
    case "connect":
      return {
        ":path": path,
        "content-type": `application/${codec}`,
        "connect-protocol-version": "1",
        ...(options.encoding === undefined ? {} : { "content-encoding": options.encoding }),
        ...options.extra,
      };
    case "grpc":
    case "grpc-web":
      return {
        ":path": path,
        "content-type": `application/${protocol}+${codec}`,
        ...(protocol === "grpc" ? { te: "trailers" } : {}),
        ...(options.encoding === undefined ? {} : { "grpc-encoding": options.encoding }),
        ...options.extra,
      };
  }
}

/**
 * The error a raw response carries, decoded the way connect-es clients
 * decode it (with its details), or undefined for a success. Throws when the
 * response is not a well-formed answer of the protocol at all.
 */
export function rawOutcome(protocol: RawProtocol, response: RawResponse): ConnectError | undefined {
  if (response.resetCode !== undefined) {
    throw new Error(`the server reset the stream with HTTP/2 code ${response.resetCode}`);
  }
  const headerBag = toHeaders(response.headers);
  switch (protocol) {
    case "connect": {
      if (response.status === 200) {
        return undefined;
      }
      return errorFromJsonBytes(
        response.body,
        headerBag,
        new ConnectError(`HTTP ${response.status} without an error body`, Code.Unknown),
      );
    }
    case "grpc": {
      const trailerBag = toHeaders(response.trailers);
      const status = trailerBag.has("grpc-status") ? trailerBag : headerBag;
      if (!status.has("grpc-status")) {
        throw new Error(`gRPC response (HTTP ${response.status}) without grpc-status`);
      }
      return findTrailerError(status);
    }
    case "grpc-web": {
      if (headerBag.has("grpc-status")) {
        return findTrailerError(headerBag);
      }
      const trailer = grpcWebTrailer(response.body);
      if (trailer === undefined) {
        throw new Error(`gRPC-Web response (HTTP ${response.status}) without a trailer frame`);
      }
      return findTrailerError(trailer);
    }
  }
}

function grpcWebTrailer(body: Buffer): Headers | undefined {
  let offset = 0;
  while (offset + 5 <= body.byteLength) {
    const flags = body.readUInt8(offset);
    const length = body.readUInt32BE(offset + 1);
    const payload = body.subarray(offset + 5, offset + 5 + length);
    if ((flags & 0x80) === 0x80) {
      return trailerParse(payload);
    }
    offset += 5 + length;
  }
  return undefined;
}

function toHeaders(incoming: http2.IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(incoming)) {
    if (name.startsWith(":") || value === undefined) {
      continue;
    }
    for (const one of Array.isArray(value) ? value : [value]) {
      headers.append(name, one);
    }
  }
  return headers;
}

/** An h2c session to a loopback server, and every session it opens closed by `closeAll`. */
export function createSessionPool(baseUrl: string): {
  session(): http2.ClientHttp2Session;
  closeAll(): Promise<void>;
} {
  const open: http2.ClientHttp2Session[] = [];
  let current: http2.ClientHttp2Session | undefined;
  return {
    session() {
      if (current === undefined || current.closed || current.destroyed) {
        current = http2.connect(baseUrl);
        current.on("error", () => {});
        open.push(current);
      }
      return current;
    },
    async closeAll() {
      await Promise.all(
        open.map(
          (session) =>
            new Promise<void>((resolve) => {
              if (session.closed || session.destroyed) {
                resolve();
                return;
              }
              session.close(() => resolve());
              // A session that a server never answers must not hold up afterAll.
              setTimeout(() => {
                session.destroy();
                resolve();
              }, 2_000).unref();
            }),
        ),
      );
    },
  };
}
