import { type ChildProcess, execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { createTempDataDir, repoRoot, spawnDemo } from "./demo-process.js";

// The buf CLI from @bufbuild/buf: a client that nobody on this project wrote.
const buf = join(repoRoot, "node_modules/@bufbuild/buf/bin/buf");

interface CurlResult {
  /** buf curl's exit status: 0, or the gRPC code shifted left by 3. */
  readonly status: number;
  /** The response message as JSON (stdout). */
  readonly body: string;
  /** The error as JSON, which buf curl writes to stderr after its trace. */
  readonly error: string;
  /** The -v trace, with the response headers. */
  readonly trace: string;
}

function bufCurl(baseUrl: string, protocol: "grpc" | "connect", data: object): Promise<CurlResult> {
  return new Promise((resolve, reject) => {
    execFile(
      buf,
      [
        "curl",
        "--schema",
        "demo/proto",
        "--http2-prior-knowledge",
        "--protocol",
        protocol,
        "-v",
        "-d",
        JSON.stringify(data),
        `${baseUrl}/demo.v1.PaymentService/CreatePayment`,
      ],
      { cwd: repoRoot, timeout: 20_000 },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== "number") {
          reject(error);
          return;
        }
        const lines = stderr.split("\n");
        resolve({
          status: error === null ? 0 : Number(error.code),
          body: stdout,
          error: lines.filter((line) => !line.startsWith("buf: ")).join("\n"),
          trace: lines.filter((line) => line.startsWith("buf: ")).join("\n"),
        });
      },
    );
  });
}

const replayedHeader = /^buf: < \(#1\) Idempotency-Replayed: true$/im;

describe("npm start -- --serve, called with buf curl", () => {
  const dataDir = createTempDataDir();
  let server: ChildProcess;
  let baseUrl: string;

  beforeAll(async () => {
    server = spawnDemo(["--serve", "--port", "0", "--data-dir", dataDir.path]);
    baseUrl = await new Promise<string>((resolve, reject) => {
      let stdout = "";
      server.stdout?.on("data", (chunk: Buffer) => {
        stdout += chunk.toString();
        const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
        if (match !== null) {
          resolve(match[1]!);
        }
      });
      server.once("exit", (status) =>
        reject(new Error(`the server exited with ${status} before listening:\n${stdout}`)),
      );
    });
  });

  afterAll(async () => {
    if (server.exitCode === null && server.signalCode === null) {
      await new Promise((resolve) => {
        server.once("exit", resolve);
        server.kill("SIGTERM");
      });
    }
    dataDir.remove();
  });

  const payment = (requestId: string, amountMinor: string) => ({
    request_id: requestId,
    account_id: "acct-001",
    amount_minor: amountMinor,
    currency: "EUR",
  });

  it.each(["grpc", "connect"] as const)(
    "over %s: executes the first call, replays the second, refuses a changed payload",
    async (protocol) => {
      const requestId = randomUUID();
      const first = await bufCurl(baseUrl, protocol, payment(requestId, "1250"));
      expect(first.status, first.trace).toBe(0);
      expect(first.trace).not.toMatch(replayedHeader);
      const firstPayment = (JSON.parse(first.body) as { payment: { paymentId: string; chargeId: string } }).payment;
      expect(firstPayment.paymentId).toMatch(/^pay_/);

      const second = await bufCurl(baseUrl, protocol, payment(requestId, "1250"));
      expect(second.status, second.trace).toBe(0);
      expect(second.trace).toMatch(replayedHeader);
      expect(JSON.parse(second.body)).toEqual(JSON.parse(first.body));

      const changed = await bufCurl(baseUrl, protocol, payment(requestId, "9999"));
      // FAILED_PRECONDITION is code 9; buf curl exits with the code shifted by 3.
      expect(changed.status, changed.trace).toBe(9 << 3);
      const error = JSON.parse(changed.error) as { code: string; details: { type: string; value: string }[] };
      expect(error.code).toBe("failed_precondition");
      const infos = error.details
        .filter((detail) => detail.type === "google.rpc.ErrorInfo")
        .map((detail) => fromBinary(ErrorInfoSchema, Buffer.from(detail.value, "base64")));
      expect(infos).toMatchObject([{ reason: "REQUEST_ID_REUSED", domain: "connect-idempotency" }]);

      // Three calls, one payment and one charge.
      const payments = new Database(join(dataDir.path, "payments.sqlite"), { readonly: true });
      const bank = new Database(join(dataDir.path, "bank.sqlite"), { readonly: true });
      try {
        expect(
          payments.prepare("SELECT payment_id, charge_id FROM payments WHERE request_id = ?").all(requestId),
        ).toEqual([{ payment_id: firstPayment.paymentId, charge_id: firstPayment.chargeId }]);
        expect(
          bank.prepare("SELECT count(*) AS n FROM charges WHERE charge_id = ?").get(firstPayment.chargeId),
        ).toEqual({ n: 1 });
      } finally {
        payments.close();
        bank.close();
      }
    },
  );
});
