import { createRouterTransport } from "@connectrpc/connect";
import { expect, it } from "vitest";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { type ClientServicePlan, createIdempotentClient } from "../../src/client/index.js";

// The plan a generated client passes is checked by the compiler: the lines
// marked @ts-expect-error fail `npm run typecheck` once they compile.
it("types the static plan by the service's methods and request fields", async () => {
  const transport = createRouterTransport(({ service }) => {
    service(PaymentService, { createPayment: (req) => ({ payment: { paymentId: req.requestId } }) });
  });
  const plan: ClientServicePlan<typeof PaymentService> = {
    createPayment: { requestIdField: "requestId", autoFill: true },
    getPayment: { safeToRetry: true },
  };
  const client = createIdempotentClient(PaymentService, transport, plan);
  const response = await client.createPayment({});
  expect(response.payment?.paymentId).toMatch(/^[0-9a-f-]{36}$/);

  const wrongField: ClientServicePlan<typeof PaymentService> = {
    // @ts-expect-error: CreatePaymentRequest has no field requestID
    createPayment: { requestIdField: "requestID", autoFill: true },
  };
  const notAString: ClientServicePlan<typeof PaymentService> = {
    // @ts-expect-error: amountMinor is not a string field
    createPayment: { requestIdField: "amountMinor", autoFill: true },
  };
  const noSuchMethod: ClientServicePlan<typeof PaymentService> = {
    // @ts-expect-error: PaymentService has no method createPayments
    createPayments: { safeToRetry: true },
  };
  expect([wrongField, notAString, noSuchMethod]).toHaveLength(3);
});
