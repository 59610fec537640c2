import { randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type CallOptions, Code, ConnectError } from "@connectrpc/connect";
import type { CreatePaymentRequestSchema, CreatePaymentResponse } from "../gen/demo/v1/payments_pb.js";
import { isRetryableError } from "../src/client/retryable-error.js";

/** The metadata entry that ties a recorded payment to the load's request number. */
export const demoSequenceKey = "demo_seq";

/** The part of the generated client the load uses. */
export interface PaymentsClient {
  createPayment(
    request: MessageInitShape<typeof CreatePaymentRequestSchema>,
    options?: CallOptions,
  ): Promise<CreatePaymentResponse>;
}

/** How one payment of the load ended, as the client saw it. */
export type PaymentOutcome =
  | { readonly seq: number; readonly kind: "acknowledged"; readonly paymentId: string }
  | { readonly seq: number; readonly kind: "failed"; readonly error: ConnectError };

/** Options of `runPaymentLoad`. */
export interface PaymentLoadOptions {
  /** The generated client, over whatever network the demo chose. */
  readonly client: PaymentsClient;
  /** Payments to ask for. */
  readonly payments: number;
  /** Calls in flight at once. */
  readonly concurrency: number;
  /** Picks accounts, amounts and currencies. */
  readonly random: () => number;
  /** Called as each payment ends, in the order they end. */
  readonly onOutcome?: (outcome: PaymentOutcome, done: number) => void;
  /** Gives a share of the calls a deadline shorter than the handler takes. Default: none. */
  readonly deadlines?: LoadDeadlines;
}

/** Calls with a deadline of their own, in `PaymentLoadOptions`. */
export interface LoadDeadlines {
  /** Share of the calls that get the deadline, in [0, 1). */
  readonly share: number;
  /** The deadline, in milliseconds: shorter than the handler takes. */
  readonly timeoutMs: number;
  /** Called with the request ID of every call that ended without an answer within its deadline, before it is asked again. */
  readonly onExpired: (requestId: string) => void;
}

const currencies = ["EUR", "USD", "GBP", "CHF"] as const;

/**
 * Asks for `payments` payments, `concurrency` at a time, each exactly once
 * from the caller's point of view: the client's retries happen inside
 * `createPayment`. The request ID is left empty for the generated client to
 * fill in; the request's number travels in the metadata, so that the report
 * can find every row the request caused.
 */
export async function runPaymentLoad(options: PaymentLoadOptions): Promise<PaymentOutcome[]> {
  // Drawn up front, so that a seed gives the same payments whatever the timing.
  const requests = Array.from({ length: options.payments }, (_, seq) => ({
    accountId: `acct-${String(1 + Math.floor(options.random() * 40)).padStart(3, "0")}`,
    amountMinor: BigInt(100 + Math.floor(options.random() * 99_900)),
    currency: currencies[Math.floor(options.random() * currencies.length)] ?? "EUR",
    metadata: { [demoSequenceKey]: String(seq) },
    // Its own request ID, so that the load can ask again after the deadline.
    ...(options.deadlines !== undefined && options.random() < options.deadlines.share
      ? { requestId: randomUUID() }
      : {}),
  }));
  // A call with a deadline that ended without an answer is asked again with
  // the same request ID and no deadline, as an application does that must
  // learn the outcome. Its error is DEADLINE_EXCEEDED, or the last attempt's
  // when the deadline cut the client's retries short (say, a reset).
  const ask = async (request: (typeof requests)[number]): Promise<CreatePaymentResponse> => {
    const { deadlines } = options;
    if (deadlines === undefined || request.requestId === undefined) {
      return options.client.createPayment(request);
    }
    try {
      return await options.client.createPayment(request, { timeoutMs: deadlines.timeoutMs });
    } catch (err) {
      const error = ConnectError.from(err);
      if (error.code !== Code.DeadlineExceeded && !isRetryableError(error)) {
        throw err;
      }
      deadlines.onExpired(request.requestId);
      return options.client.createPayment(request);
    }
  };
  const outcomes: PaymentOutcome[] = [];
  let next = 0;
  const worker = async () => {
    for (let seq = next++; seq < requests.length; seq = next++) {
      let outcome: PaymentOutcome;
      try {
        const response = await ask(requests[seq]!);
        outcome = { seq, kind: "acknowledged", paymentId: response.payment?.paymentId ?? "" };
      } catch (err) {
        outcome = { seq, kind: "failed", error: ConnectError.from(err) };
      }
      outcomes.push(outcome);
      options.onOutcome?.(outcome, outcomes.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, requests.length) }, worker));
  return outcomes;
}
