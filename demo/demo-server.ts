import { mkdirSync } from "node:fs";
import * as http2 from "node:http2";
import { join } from "node:path";
import { type Interceptor, createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport } from "@connectrpc/connect-node";
import { BankService } from "../gen/demo/v1/bank_pb.js";
import { PaymentService } from "../gen/demo/v1/payments_pb.js";
import type { IdempotencyEvent } from "../src/server/idempotency-event.js";
import { createIdempotencyInterceptor } from "../src/server/idempotency-interceptor.js";
import { createSqliteStore, type SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { listenOnLoopback } from "../src/testing/listen-on-loopback.js";
import { createBankServiceImpl } from "./bank-service.js";
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

/** The SQLite files of the demo in its data folder. */
export interface DemoDatabaseFiles {
  /** The payment service: its idempotency records and the `payments` table. */
  readonly payments: string;
  /** The fake bank: its idempotency records and the `charges` table. */
  readonly bank: string;
}

/** Where the demo keeps its SQLite files. */
export function demoDatabaseFiles(dataDir: string): DemoDatabaseFiles {
  return { payments: join(dataDir, "payments.sqlite"), bank: join(dataDir, "bank.sqlite") };
}

/** Options of `startDemoServer`. */
export interface DemoServerOptions {
  /** The folder of the SQLite files; created when missing. */
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
 * server on 127.0.0.1, each behind its own idempotency interceptor and SQLite store. The
 * payment service charges the bank through a Connect client over loopback,
 * like it would a real bank over the network.
 */
export async function startDemoServer(options: DemoServerOptions): Promise<DemoServer> {
  const server = http2.createServer();
  const listener = await listenOnLoopback(server, options.port);
  const { port } = listener;
  // From here to attaching the routes nothing awaits: no request can arrive
  // before they are in place.
  const opened: SqliteStore[] = [];
  try {
    mkdirSync(options.dataDir, { recursive: true });
    const files = demoDatabaseFiles(options.dataDir);
    // The demo's lease is short (its crash must be recovered from quickly);
    // a lease has to outlast three busy waits, so the busy timeout is short too.
    opened.push(createSqliteStore({ path: files.payments, busyTimeoutMs: 1_000 }));
    opened.push(createSqliteStore({ path: files.bank, busyTimeoutMs: 1_000 }));
  } catch (err) {
    await Promise.all(opened.map((store) => store.close()));
    await listener.close();
    throw err;
  }
  const [paymentsStore, bankStore] = opened as [SqliteStore, SqliteStore];
  const bank = createClient(
    BankService,
    createConnectTransport({
      baseUrl: `http://127.0.0.1:${port}`,
      httpVersion: "2",
      interceptors: [...(options.bankInterceptors ?? [])],
    }),
  );
  const interceptorsOf = (service: DemoService, store: SqliteStore) =>
    options.idempotency
      ? [
          createIdempotencyInterceptor({
            store,
            lease: options.leaseMs,
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
        router.service(PaymentService, createPaymentServiceImpl({ ledger: paymentsStore, bank }), {
          interceptors: interceptorsOf("payments", paymentsStore),
        });
        router.service(BankService, createBankServiceImpl(bankStore), {
          interceptors: interceptorsOf("bank", bankStore),
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
        await Promise.all([paymentsStore.close(), bankStore.close()]);
      })();
      return closed;
    },
  };
}
