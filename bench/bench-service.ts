import type { ConnectRouter, Interceptor } from "@connectrpc/connect";

/** What a server scenario puts into connect-node: its routes, its interceptors, and how to shut down. */
export interface BenchService {
  /** Registers demo.v1.PaymentService/CreatePayment. */
  readonly routes: (router: ConnectRouter) => void;
  /** Server interceptors, outermost first. */
  readonly interceptors: Interceptor[];
  /** Closes stores and connections, and deletes what the scenario left in shared services. */
  close(): Promise<void>;
}
