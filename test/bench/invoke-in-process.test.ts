import { afterAll, describe, expect, it } from "vitest";
import type { CreatePaymentRequest } from "../../gen/demo/v1/payments_pb.js";
import type { BenchService } from "../../bench/bench-service.js";
import { invokeInProcess } from "../../bench/invoke-in-process.js";
import { createPayment } from "../../bench/payment-handler.js";
import { paymentRequest } from "../../bench/payment-request.js";
import { createIdempotencyInterceptor } from "../../src/server/idempotency-interceptor.js";
import { replayedHeader } from "../../src/server/protocol-headers.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";

// The layer-alone scenarios call the service in-process. They only measure
// the interceptor if this path really runs server interceptors.
describe("invokeInProcess", () => {
  const store = createSqliteStore({ path: ":memory:", sweepIntervalMs: 0 });
  afterAll(async () => {
    await store.close();
  });

  it("runs the server interceptors around the handler: a duplicate is replayed without running it", async () => {
    const handled: string[] = [];
    const service: BenchService = {
      createPayment(req: CreatePaymentRequest) {
        handled.push(req.requestId);
        return createPayment(req);
      },
      interceptors: [createIdempotencyInterceptor({ store })],
      close: async () => {},
    };
    const requestId = crypto.randomUUID();
    const first = await invokeInProcess(service, paymentRequest(requestId));
    const second = await invokeInProcess(service, paymentRequest(requestId));
    expect(handled).toEqual([requestId]);
    expect(first.message.payment?.paymentId).toBe(`pay_${requestId}`);
    expect(second.message).toEqual(first.message);
    expect(first.header.get(replayedHeader)).toBeNull();
    expect(second.header.get(replayedHeader)).toBe("true");
    expect(
      await store.get({ scope: "", method: "demo.v1.PaymentService/CreatePayment", key: requestId }),
    ).toMatchObject({
      status: "completed",
    });
  });
});
