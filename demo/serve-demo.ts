import { randomUUID } from "node:crypto";
import type { DemoOptions } from "./demo-options.js";
import { startDemoServer } from "./demo-server.js";

/**
 * `npm start -- --serve`: runs the demo server in this process on the chosen
 * port until `until` settles, for clients such as `buf curl`. Its data stays
 * in the data folder across restarts, as a real service's would.
 */
export async function serveDemo(
  options: Pick<DemoOptions, "dataDir" | "port" | "idempotency">,
  stdout: NodeJS.WritableStream,
  until: Promise<unknown>,
): Promise<void> {
  const server = await startDemoServer({
    dataDir: options.dataDir,
    port: options.port,
    idempotency: options.idempotency,
  });
  const url = `http://127.0.0.1:${server.port}`;
  stdout.write(
    [
      `demo.v1.PaymentService and demo.v1.BankService listening on ${url} (h2c: Connect, gRPC, gRPC-Web), ` +
        `idempotency ${options.idempotency ? "ON" : "OFF"}, SQLite files in ${options.dataDir}`,
      "Call it twice with the same request_id; the second answer carries the header idempotency-replayed: true.",
      `  npx buf curl --schema demo/proto --http2-prior-knowledge --protocol grpc -v \\`,
      `    -d '{"request_id": "${randomUUID()}", "account_id": "acct-001", "amount_minor": "1250", "currency": "EUR"}' \\`,
      `    ${url}/demo.v1.PaymentService/CreatePayment`,
      "Press Ctrl-C to stop.",
      "",
    ].join("\n"),
  );
  try {
    await until;
  } finally {
    await server.close();
  }
}
