import type { DemoOptions } from "../demo-options.js";
import { startWebCheckout } from "./web-checkout.js";

/**
 * `npm start -- --web`: serves the checkout page until `until` settles. The
 * page and its RPC edge are on two ports, so two origins, as a shop's front
 * end and API are; the edge answers CORS.
 */
export async function serveWebCheckout(
  options: Pick<DemoOptions, "dataDir" | "port">,
  stdout: NodeJS.WritableStream,
  until: Promise<unknown>,
): Promise<void> {
  const checkout = await startWebCheckout({ dataDir: options.dataDir, port: options.port });
  stdout.write(
    [
      `Checkout page on http://127.0.0.1:${checkout.port}/ (open it in a browser)`,
      `RPC edge (HTTP/1.1, CORS, flaky network) on http://127.0.0.1:${checkout.apiPort}, in front of demo.v1.PaymentService`,
      `SQLite files in ${options.dataDir}. Press Ctrl-C to stop.`,
      "",
    ].join("\n"),
  );
  try {
    await until;
  } finally {
    await checkout.close();
  }
}
