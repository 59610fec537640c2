import { create } from "@bufbuild/protobuf";
import {
  type CreatePaymentRequest,
  type CreatePaymentResponse,
  CreatePaymentResponseSchema,
} from "../gen/demo/v1/payments_pb.js";

/**
 * The handler every scenario serves: builds the payment from the request and
 * does no I/O, so that what the bench measures is the RPC plus whatever wraps
 * the handler.
 */
export function createPayment(req: CreatePaymentRequest): CreatePaymentResponse {
  return create(CreatePaymentResponseSchema, {
    payment: {
      paymentId: `pay_${req.requestId}`,
      accountId: req.accountId,
      amountMinor: req.amountMinor,
      currency: req.currency,
      metadata: req.metadata,
    },
  });
}
