import { create, toBinary } from "@bufbuild/protobuf";
import {
  type CreatePaymentRequest,
  CreatePaymentRequestSchema,
  CreatePaymentResponseSchema,
  PaymentService,
} from "../gen/demo/v1/payments_pb.js";
import { StoredOutcomeSchema } from "../gen/idempotency/v1/stored_outcome_pb.js";
import { createPayment } from "./payment-handler.js";

/** The method of the records the interceptor writes for CreatePayment. */
export const paymentRecordMethod = `${PaymentService.typeName}/${PaymentService.method.createPayment.name}`;

/** The scope of the records the interceptor writes when no scope is configured. */
export const paymentRecordScope = "";

/**
 * The request every scenario sends. Only the request ID varies, so a replayed
 * call carries exactly the payload of the first one.
 */
export function paymentRequest(requestId: string): CreatePaymentRequest {
  return create(CreatePaymentRequestSchema, {
    requestId,
    accountId: "acct_7Hq2kXb9",
    amountMinor: 12_999n,
    currency: "EUR",
    metadata: { order: "ord_55821", channel: "web" },
  });
}

/**
 * A stored outcome of the size the interceptor writes for this request, for
 * the scenarios that talk to a store without the interceptor.
 */
export function storedPaymentOutcome(requestId: string): Uint8Array {
  const response = toBinary(CreatePaymentResponseSchema, createPayment(paymentRequest(requestId)));
  return toBinary(StoredOutcomeSchema, create(StoredOutcomeSchema, { result: { case: "response", value: response } }));
}
