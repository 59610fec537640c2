import { createHandlerContext, type MethodImplSpec } from "@connectrpc/connect";
import { invokeUnaryImplementation } from "@connectrpc/connect/protocol";
import { type CreatePaymentRequest, type CreatePaymentResponse, PaymentService } from "../gen/demo/v1/payments_pb.js";
import type { BenchService } from "./bench-service.js";

const method = PaymentService.method.createPayment;
const url = `http://127.0.0.1/${PaymentService.typeName}/${method.name}`;

/** What one in-process call returned: the response and the headers the client would get. */
export interface InProcessResponse {
  readonly message: CreatePaymentResponse;
  readonly header: Headers;
}

/**
 * Calls a scenario's CreatePayment the way connect-node's gRPC handler does
 * once it has parsed a request: a handler context with the headers the
 * protocol prepares, then the server interceptors and the implementation
 * through connect's `invokeUnaryImplementation`, and the call's signal ended
 * afterwards. Only the HTTP/2 stream and the (de)serialization are left out.
 */
export async function invokeInProcess(
  service: BenchService,
  request: CreatePaymentRequest,
): Promise<InProcessResponse> {
  const context = createHandlerContext({
    service: PaymentService,
    method,
    protocolName: "grpc",
    requestMethod: "POST",
    url,
    requestHeader: { "content-type": "application/grpc", te: "trailers" },
    responseHeader: { "content-type": "application/grpc+proto" },
    responseTrailer: { "grpc-status": "0" },
  });
  // What createMethodImplSpec builds for a unary method, typed as such.
  const spec: MethodImplSpec<typeof method.input, typeof method.output> & { kind: "unary" } = {
    kind: "unary",
    method,
    impl: service.createPayment,
  };
  try {
    const message = await invokeUnaryImplementation(spec, context, request, service.interceptors);
    return { message, header: context.responseHeader };
  } finally {
    context.abort();
  }
}
