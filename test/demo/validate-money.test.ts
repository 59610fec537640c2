import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDemoServer, type DemoServer } from "../../demo/demo-server.js";
import { validateMoney } from "../../demo/validate-money.js";
import { BankService } from "../../gen/demo/v1/bank_pb.js";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { expectConnectError } from "../support/connect-assertions.js";
import { createTempDataDir } from "./demo-process.js";

const valid = { accountId: "acct_1", amountMinor: 100n, currency: "EUR" };

const refusals = [
  { name: "no account", fields: { ...valid, accountId: "" }, message: "account_id is required" },
  { name: "a zero amount", fields: { ...valid, amountMinor: 0n }, message: "amount_minor must be positive" },
  { name: "a negative amount", fields: { ...valid, amountMinor: -5n }, message: "amount_minor must be positive" },
  {
    name: "a lowercase currency",
    fields: { ...valid, currency: "eur" },
    message: "currency must be an ISO 4217 code such as EUR",
  },
  { name: "no currency", fields: { ...valid, currency: "" }, message: "currency must be an ISO 4217 code such as EUR" },
];

describe("validateMoney", () => {
  it("accepts an account, a positive amount and an ISO 4217 code", () => {
    expect(() => validateMoney(valid)).not.toThrow();
  });

  it.each(refusals)("refuses $name with INVALID_ARGUMENT", ({ fields, message }) => {
    expect(() => validateMoney(fields)).toThrow(
      expect.objectContaining({ code: Code.InvalidArgument, rawMessage: message }),
    );
  });
});

describe("the demo services refuse the same money fields", () => {
  let data: ReturnType<typeof createTempDataDir>;
  let server: DemoServer;

  beforeAll(async () => {
    data = createTempDataDir();
    server = await startDemoServer({ dataDir: data.path, port: 0, idempotency: true });
  });

  afterAll(async () => {
    await server?.close();
    data?.remove();
  });

  it.each(refusals)(
    "$name: CreatePayment and the bank's Charge answer INVALID_ARGUMENT",
    async ({ fields, message }) => {
      const transport = createConnectTransport({ baseUrl: `http://127.0.0.1:${server.port}`, httpVersion: "2" });
      const requestId = crypto.randomUUID();
      const payment = await expectConnectError(
        createClient(PaymentService, transport).createPayment({ requestId, ...fields }),
      );
      const charge = await expectConnectError(createClient(BankService, transport).charge({ requestId, ...fields }));
      for (const error of [payment, charge]) {
        expect([error.code, error.rawMessage]).toEqual([Code.InvalidArgument, message]);
      }
    },
  );
});
