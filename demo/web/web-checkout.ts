import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { startDemoServer } from "../demo-server.js";
import { type CheckoutLedger, openCheckoutLedger } from "./checkout-ledger.js";
import { createFlakyRpcProxy } from "./flaky-rpc-proxy.js";
import { type NetworkAttempt, type NetworkFaults, createNetworkFaults, updateNetworkFaults } from "./network-faults.js";

/** Options of `startWebCheckout`. */
export interface WebCheckoutOptions {
  /** The folder of the demo's SQLite files. */
  readonly dataDir: string;
  /** The port of the page; 0 picks a free one. */
  readonly port: number;
  /** The port of the RPC edge the page calls across origins; 0 picks a free one. */
  readonly apiPort?: number;
}

/** A running checkout, from `startWebCheckout`. */
export interface WebCheckout {
  /** The port of the page server. */
  readonly port: number;
  /** The port of the RPC edge (HTTP/1.1 with CORS). */
  readonly apiPort: number;
  /** The switches of the flaky network. */
  readonly faults: NetworkFaults;
  /** Every RPC the edge saw, in order. */
  readonly attempts: readonly NetworkAttempt[];
  /** The bank's charges. */
  readonly ledger: CheckoutLedger;
  /** Closes both HTTP servers, the demo server and the ledger. */
  close(): Promise<void>;
}

const pageEntry = fileURLToPath(new URL("./page/checkout-page.tsx", import.meta.url));

/**
 * `npm start -- --web`: the demo's payment service behind an HTTP/1.1 edge
 * with CORS and a flaky network, and a checkout page on another port (so
 * another origin) that pays through connect-web, the generated client and
 * TanStack Query. The page is bundled with esbuild at start.
 */
export async function startWebCheckout(options: WebCheckoutOptions): Promise<WebCheckout> {
  const bundle = await build({
    entryPoints: [pageEntry],
    bundle: true,
    platform: "browser",
    format: "esm",
    minify: true,
    write: false,
    jsx: "automatic",
    define: { "process.env.NODE_ENV": '"production"' },
    logLevel: "silent",
  });
  const script = bundle.outputFiles[0]?.contents ?? new Uint8Array();
  const demo = await startDemoServer({ dataDir: options.dataDir, port: 0, idempotency: true });
  const ledger = openCheckoutLedger(options.dataDir);
  const faults = createNetworkFaults();
  const attempts: NetworkAttempt[] = [];
  const proxy = createFlakyRpcProxy({
    upstream: `http://127.0.0.1:${demo.port}`,
    faults,
    onAttempt: (attempt) => attempts.push(attempt),
  });
  const api = http.createServer(proxy.handle);
  const apiPort = await listen(api, options.apiPort ?? 0);
  const page = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://page");
    if (req.method === "GET" && url.pathname === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
      res.end(pageHtml(apiPort));
    } else if (req.method === "GET" && url.pathname === "/checkout.js") {
      res.writeHead(200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-store" });
      res.end(script);
    } else if (req.method === "GET" && url.pathname === "/api/state") {
      json(res, { faults, attempts, charges: ledger.charges(url.searchParams.get("account") ?? undefined) });
    } else if (req.method === "POST" && url.pathname === "/api/network") {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        try {
          updateNetworkFaults(faults, JSON.parse(Buffer.concat(chunks).toString("utf8")));
          json(res, faults);
        } catch {
          res.writeHead(400).end();
        }
      });
    } else {
      res.writeHead(404).end();
    }
  });
  const port = await listen(page, options.port);
  let closed: Promise<void> | undefined;
  return {
    port,
    apiPort,
    faults,
    attempts,
    ledger,
    close() {
      closed ??= (async () => {
        proxy.close();
        await Promise.all([stop(api), stop(page)]);
        ledger.close();
        await demo.close();
      })();
      return closed;
    },
  };
}

function json(res: http.ServerResponse, value: unknown): void {
  res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(JSON.stringify(value));
}

function listen(server: http.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function stop(server: http.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

function pageHtml(apiPort: number): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Checkout: connect-idempotency</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2330; background: #f6f7f9; }
  h1 { font-size: 20px; margin: 0 0 16px; }
  h2 { font-size: 15px; margin: 0 0 8px; }
  .grid { display: grid; grid-template-columns: 340px 1fr; gap: 16px; }
  .card { background: #fff; border: 1px solid #d8dce3; border-radius: 8px; padding: 14px; margin-bottom: 16px; }
  button { font: inherit; padding: 6px 12px; margin: 4px 4px 4px 0; border-radius: 6px; border: 1px solid #8a93a6; background: #fff; cursor: pointer; }
  button.primary { background: #2454d6; color: #fff; border-color: #2454d6; }
  label { display: block; margin: 4px 0; }
  input[type=number] { width: 64px; }
  table { border-collapse: collapse; width: 100%; font: 12px/1.4 ui-monospace, monospace; }
  td, th { text-align: left; padding: 3px 6px; border-bottom: 1px solid #eceef2; vertical-align: top; }
  .replayed { color: #0a7d32; font-weight: 600; }
  .error { color: #b3261e; }
  .muted { color: #6b7385; }
</style>
</head>
<body>
<div id="root" data-api-port="${apiPort}"></div>
<script type="module" src="/checkout.js"></script>
</body>
</html>
`;
}
