import type { Transport } from "@connectrpc/connect";
import {
  compressionGzip,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";

/** The wire protocols connect-node speaks. */
export type WireProtocol = "connect" | "grpc" | "grpc-web";

/** One way a client can talk to a server: protocol, codec and compression. */
export interface TransportVariant {
  /** A readable name for test titles, such as `grpc json gzip`. */
  readonly name: string;
  readonly protocol: WireProtocol;
  /** Protobuf binary (true) or JSON (false). */
  readonly binary: boolean;
  /** Requests gzip-compressed and only gzip accepted, or no compression at all. */
  readonly gzip: boolean;
}

/**
 * Every protocol, codec and compression combination. JSON over gRPC-Web is
 * included: connect-node serves `application/grpc-web+json`.
 */
export const transportVariants: readonly TransportVariant[] = (["connect", "grpc", "grpc-web"] as const).flatMap(
  (protocol) =>
    [true, false].flatMap((binary) =>
      [false, true].map((gzip) => ({
        name: `${protocol} ${binary ? "binary" : "json"}${gzip ? " gzip" : ""}`,
        protocol,
        binary,
        gzip,
      })),
    ),
);

/**
 * Creates an HTTP/2 client transport for one variant. With `gzip`, requests
 * are compressed and responses above `compressMinBytes` come back
 * compressed; without it, the client accepts no compression at all.
 */
export function createTestTransport(
  baseUrl: string,
  variant: Pick<TransportVariant, "protocol" | "binary" | "gzip">,
): Transport {
  const options = {
    baseUrl,
    httpVersion: "2" as const,
    useBinaryFormat: variant.binary,
    sendCompression: variant.gzip ? compressionGzip : undefined,
    acceptCompression: variant.gzip ? [compressionGzip] : [],
    // Compress even small messages, so that compression is really exercised.
    compressMinBytes: 1,
  };
  switch (variant.protocol) {
    case "connect":
      return createConnectTransport(options);
    case "grpc":
      return createGrpcTransport(options);
    case "grpc-web":
      return createGrpcWebTransport(options);
  }
}
