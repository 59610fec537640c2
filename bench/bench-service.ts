import type { Interceptor, MethodImpl } from "@connectrpc/connect";
import type { PaymentService } from "../gen/demo/v1/payments_pb.js";

/**
 * What a scenario puts around the handler: the CreatePayment implementation
 * (a peer library wraps the handler inside it), server interceptors, and how
 * to shut down. A server process serves it over HTTP/2; a layer-alone
 * process invokes it in-process, the way connect-node does after parsing a request.
 */
export interface BenchService {
  /** demo.v1.PaymentService/CreatePayment. */
  readonly createPayment: MethodImpl<typeof PaymentService.method.createPayment>;
  /** Server interceptors, outermost first. */
  readonly interceptors: Interceptor[];
  /** Closes stores and connections, and deletes what the scenario left in shared services. */
  close(): Promise<void>;
}
