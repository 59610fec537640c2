import * as http2 from "node:http2";
import { type Interceptor, createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport } from "@connectrpc/connect-node";
import { BankService } from "../gen/demo/v1/bank_pb.js";
import { PaymentService } from "../gen/demo/v1/payments_pb.js";
import type { IdempotencyEvent } from "../src/server/idempotency-event.js";
import { createIdempotencyInterceptor } from "../src/server/idempotency-interceptor.js";
import type { IdempotencyStore } from "../src/store/idempotency-store.js";
import { listenOnLoopback } from "../src/testing/listen-on-loopback.js";
import { createBankServiceImpl } from "./bank-service.js";
import { type DemoPostgres, openDemoStores } from "./demo-stores.js";
import { createPaymentServiceImpl } from "./payment-service.js";

/** The two services of the demo, as named in events. */
export type DemoService = "payments" | "bank";

/**
 * The largest request message the demo server reads, in bytes, after
 * decompression: 4 MiB. connect-node's default is about 4 GiB, so without it
 * a 1.6 KB brotli body that inflates to 1 GiB is decompressed in full (three
 * at once took the server to 5.3 GB of memory); with it, such a body gets
 * RESOURCE_EXHAUSTED as soon as its output passes the limit. Set it on every
 * server: no payment comes near it.
 */
export const demoReadMaxBytes = 4 * 1024 * 1024;

/** Options of `startDemoServer`. */
export interface DemoServerOptions {
  /** The folder of the SQLite files; created when missing (unused with `postgres`). */
  readonly dataDir: string;
  /** The port to listen on; 0 picks a free one. */
  readonly port: number;
  /** False runs both services without their idempotency interceptors. */
  readonly idempotency: boolean;
  /**
   * How long a claim holds before a retry may take it over. Short in the
   * demo, so that requests cut off by the SIGKILL recover within seconds.
   */
  readonly leaseMs?: number;
  /** Receives every decision of both interceptors. */
  readonly onEvent?: (service: DemoService, event: IdempotencyEvent) => void;
  /** Keep the data on PostgreSQL instead of in SQLite files in `dataDir`. */
  readonly postgres?: DemoPostgres;
  /** Interceptors of the payment service's client of the bank, such as the demo's lossy link (`createBankLinkInterceptor`). */
  readonly bankInterceptors?: readonly Interceptor[];
}

/** A running demo server. */
export interface DemoServer {
  /** The port it listens on. */
  readonly port: number;
  /** Closes open sessions, the server and both stores. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Starts `demo.v1.PaymentService` and `demo.v1.BankService` on one h2c
 * server on 127.0.0.1, each behind its own idempotency interceptor and store (SQLite, or PostgreSQL). The
 * payment service charges the bank through a Connect client over loopback,
 * like it would a real bank over the network.
 */
export async function startDemoServer(options: DemoServerOptions): Promise<DemoServer> {
  const stores = await openDemoStores(options.dataDir, options.postgres);
  const server = http2.createServer();
  let listener: Awaited<ReturnType<typeof listenOnLoopback>>;
  try {
    listener = await listenOnLoopback(server, options.port);
  } catch (err) {
    await stores.close();
    throw err;
  }
  const { port } = listener;
  // From here to attaching the routes nothing awaits: no request can arrive
  // before they are in place.
  const bank = createClient(
    BankService,
    createConnectTransport({
      baseUrl: `http://127.0.0.1:${port}`,
      httpVersion: "2",
      interceptors: [...(options.bankInterceptors ?? [])],
    }),
  );
  const interceptorsOf = (service: DemoService, store: IdempotencyStore) =>
    options.idempotency
      ? [
          createIdempotencyInterceptor({
            store,
            leaseMs: options.leaseMs,
            onEvent: (event) => options.onEvent?.(service, event),
          }),
        ]
      : [];
  server.on(
    "request",
    connectNodeAdapter({
      // Bounds what a compressed body may inflate to: see demoReadMaxBytes.
      readMaxBytes: demoReadMaxBytes,
      routes(router) {
        router.service(PaymentService, createPaymentServiceImpl({ ledger: stores.payments.table, bank }), {
          interceptors: interceptorsOf("payments", stores.payments.store),
        });
        router.service(BankService, createBankServiceImpl(stores.bank.table), {
          interceptors: interceptorsOf("bank", stores.bank.store),
        });
      },
    }),
  );
  let closed: Promise<void> | undefined;
  return {
    port,
    close() {
      closed ??= (async () => {
        await listener.close();
        await stores.close();
      })();
      return closed;
    },
  };
}
