import { Code, ConnectError } from "@connectrpc/connect";

/** The fields of a request that moves money: `demo.v1.ChargeRequest`, `demo.v1.CreatePaymentRequest`. */
export interface MoneyFields {
  readonly accountId: string;
  readonly amountMinor: bigint;
  readonly currency: string;
}

/**
 * Refuses a request that names no account, a non-positive amount or a
 * currency that is not an ISO 4217 code, with INVALID_ARGUMENT and a message
 * naming the field. The payment service and the bank check the same fields
 * the same way, so that the bank never refuses what the payment service let
 * through.
 */
export function validateMoney(req: MoneyFields): void {
  if (req.accountId === "") {
    throw new ConnectError("account_id is required", Code.InvalidArgument);
  }
  if (req.amountMinor <= 0n) {
    throw new ConnectError("amount_minor must be positive", Code.InvalidArgument);
  }
  if (!/^[A-Z]{3}$/.test(req.currency)) {
    throw new ConnectError("currency must be an ISO 4217 code such as EUR", Code.InvalidArgument);
  }
}
