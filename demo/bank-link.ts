import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { ChargeRequest } from "../gen/demo/v1/bank_pb.js";
import { abortableSleep } from "../src/client/abortable-sleep.js";

/** Options of `createBankLinkInterceptor`. */
export interface BankLinkOptions {
  /** How long every charge takes, in milliseconds: a real bank is slower than loopback. */
  readonly latencyMs: number;
  /** Share of charges whose answer is lost after the bank charged, in [0, 1). */
  readonly timeoutRate: number;
  /** Decides which answers are lost, and how. */
  readonly random: () => number;
  /** Called for every lost answer, with the charge's reference (the payment's request ID). */
  readonly onTimeout: (reference: string) => void;
}

/**
 * The link between the payment service and its bank, as a client
 * interceptor of the payment service's bank client: every charge takes
 * `latencyMs`, and a share of them times out *after* the bank charged, so
 * that the payment service sees UNAVAILABLE or DEADLINE_EXCEEDED for money
 * that was taken. Neither code says whether the charge happened: that is an
 * indefinite error, which only a retry under the same derived key can
 * resolve without charging twice.
 */
export function createBankLinkInterceptor(options: BankLinkOptions): Interceptor {
  return (next) => async (req) => {
    // Not the call's signal: the handler asks the bank without one, on purpose.
    await abortableSleep(options.latencyMs, undefined);
    const res = await next(req);
    if (req.stream || options.random() >= options.timeoutRate) {
      return res;
    }
    options.onTimeout((req.message as ChargeRequest).reference);
    throw options.random() < 0.5
      ? new ConnectError("the bank did not answer in time, after it charged (injected)", Code.DeadlineExceeded)
      : new ConnectError("the connection to the bank broke, after it charged (injected)", Code.Unavailable);
  };
}
