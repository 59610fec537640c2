import type { Message } from "@bufbuild/protobuf";
import type { UnaryRequest, UnaryResponse } from "@connectrpc/connect";
import { replayedHeader } from "./protocol-headers.js";

/**
 * Builds the response an interceptor returns for a replayed success, without
 * the handler running.
 *
 * The header and trailer of a UnaryResponse returned without calling `next`
 * replace the ones the protocol prepared, so they must carry what the
 * protocol of this call needs: the content type of its codec, and for gRPC
 * and gRPC-Web the negotiated `grpc-encoding` and `grpc-status: 0`. Connect
 * unary calls set their `content-encoding` after the interceptor returns.
 * To these come the handler's stored headers and trailers, and
 * `idempotency-replayed: true`.
 *
 * `compressions` are the names of the compressions the server accepts, in
 * its order (the adapter's `acceptCompression`): gRPC negotiates the
 * response compression from them and the client's `grpc-accept-encoding`,
 * and compresses the body whatever header is returned.
 */
export function createReplayResponse(
  req: UnaryRequest,
  message: Message,
  storedHeader: Headers,
  storedTrailer: Headers,
  compressions: readonly string[],
): UnaryResponse {
  const header = new Headers();
  const trailer = new Headers();
  const contentType = req.header.get("content-type") ?? "";
  const grpcWeb = /^application\/grpc-web/i.test(contentType);
  if (grpcWeb || /^application\/grpc/i.test(contentType)) {
    const json = /^application\/grpc(?:-web)?\+json/i.test(contentType);
    header.set("content-type", `application/${grpcWeb ? "grpc-web" : "grpc"}+${json ? "json" : "proto"}`);
    const encoding = negotiateGrpcEncoding(req.header, compressions);
    if (encoding !== undefined) {
      header.set("grpc-encoding", encoding);
    }
    trailer.set("grpc-status", "0");
  } else {
    header.set("content-type", connectUsesJson(req, contentType) ? "application/json" : "application/proto");
  }
  storedHeader.forEach((value, name) => {
    header.append(name, value);
  });
  storedTrailer.forEach((value, name) => {
    trailer.append(name, value);
  });
  header.set(replayedHeader, "true");
  return {
    stream: false,
    service: req.service,
    method: req.method,
    header,
    trailer,
    message,
  };
}

function connectUsesJson(req: UnaryRequest, contentType: string): boolean {
  if (req.requestMethod === "GET") {
    // Connect GET requests name their codec in the query instead.
    return new URL(req.url).searchParams.get("encoding") === "json";
  }
  return /^application\/json/i.test(contentType);
}

// The same choice connect's compressionNegotiate makes for gRPC and gRPC-Web:
// the first accepted encoding the server has, or the request's own encoding
// when the client lists none.
function negotiateGrpcEncoding(requestHeader: Headers, compressions: readonly string[]): string | undefined {
  const accepted = requestHeader.get("grpc-accept-encoding");
  if (accepted === null || accepted === "") {
    const requested = requestHeader.get("grpc-encoding");
    return requested !== null && compressions.includes(requested) ? requested : undefined;
  }
  return accepted
    .split(",")
    .map((name) => name.trim())
    .find((name) => compressions.includes(name));
}
