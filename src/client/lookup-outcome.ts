import { type DescMessage, type DescMethodUnary, fromBinary, type MessageShape } from "@bufbuild/protobuf";
import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { type CallOptions, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { IdempotencyService, OutcomeState } from "../../gen/idempotency/v1/idempotency_service_pb.js";

/** When a looked-up record was claimed and until when it is kept, by the server's store clock. */
export interface LookedUpTimes {
  /** When the first execution claimed the key. */
  readonly firstExecutedAt: Date | undefined;
  /** Until when the record is kept; a retry after it runs the call anew. */
  readonly expiresAt: Date | undefined;
  /** Which execution of the key the latest claim is, 1 for the first. */
  readonly attempt: number;
}

/**
 * What became of a request ID, as `lookupOutcome` tells it:
 *
 * - `unknown`: the server has no record (never received, released, or
 *   expired): sending the request again runs it;
 * - `in_progress`: it runs, under a lease until `leaseUntil`;
 * - `interrupted`: it failed with an indefinite error and may have acted;
 *   sending the same request again takes it over;
 * - `completed`: it answered `response`, decoded as the method's output;
 * - `failed`: it answered `error`;
 * - `executed`: it ran, in DUPLICATE_MODE_REJECT, which keeps no response;
 * - `tombstoned`: it ran and answered with `originalCode` (0 for success)
 *   at `completedAt`, but its replay window has ended and the answer is no
 *   longer kept: sending it again gets FAILED_PRECONDITION
 *   REQUEST_ID_EXPIRED until `expiresAt`.
 */
export type LookedUpOutcome<O extends DescMessage> =
  | { readonly state: "unknown" }
  | ({ readonly state: "in_progress"; readonly leaseUntil: Date | undefined } & LookedUpTimes)
  | ({ readonly state: "interrupted" } & LookedUpTimes)
  | ({ readonly state: "completed"; readonly response: MessageShape<O> } & LookedUpTimes)
  | ({ readonly state: "failed"; readonly error: ConnectError } & LookedUpTimes)
  | ({ readonly state: "executed"; readonly resourceName: string } & LookedUpTimes)
  | ({
      readonly state: "tombstoned";
      readonly completedAt: Date | undefined;
      readonly originalCode: Code;
    } & LookedUpTimes);

/**
 * Asks a server's `idempotency.v1.IdempotencyService` what became of a
 * request ID of `method`, without sending the request: after a client
 * restart, with an ID kept by the pending-ID store (`pendingRequestIds`),
 * say. The server answers from its idempotency store within the caller's
 * own scope, and must mount the service (`createIdempotencyService`).
 *
 * ```ts
 * const outcome = await lookupOutcome(transport, PaymentService.method.createPayment, requestId);
 * if (outcome.state === "completed") {
 *   show(outcome.response.payment);
 * }
 * ```
 */
export async function lookupOutcome<I extends DescMessage, O extends DescMessage>(
  transport: Transport,
  method: DescMethodUnary<I, O>,
  requestId: string,
  options?: CallOptions,
): Promise<LookedUpOutcome<O>> {
  const client = createClient(IdempotencyService, transport);
  const found = await client.getOutcome({ method: `${method.parent.typeName}/${method.name}`, requestId }, options);
  const times: LookedUpTimes = {
    firstExecutedAt: dateOf(found.firstExecutedAt),
    expiresAt: dateOf(found.expiresAt),
    attempt: found.attempt,
  };
  switch (found.state) {
    case OutcomeState.IN_PROGRESS:
      return { state: "in_progress", leaseUntil: dateOf(found.leaseUntil), ...times };
    case OutcomeState.INTERRUPTED:
      return { state: "interrupted", ...times };
    case OutcomeState.TOMBSTONED:
      return {
        state: "tombstoned",
        completedAt: dateOf(found.completedAt),
        originalCode: found.originalCode as Code,
        ...times,
      };
    case OutcomeState.COMPLETED:
      break;
    default:
      return { state: "unknown" };
  }
  const { result } = found;
  switch (result.case) {
    case "response": {
      const typeName = result.value.typeUrl.substring(result.value.typeUrl.lastIndexOf("/") + 1);
      if (typeName !== method.output.typeName) {
        throw new ConnectError(
          `the stored response is a ${typeName}, not the ${method.output.typeName} of ${method.name}`,
          Code.Internal,
        );
      }
      return { state: "completed", response: fromBinary(method.output, result.value.value), ...times };
    }
    case "error": {
      const { code, message, details } = result.value;
      const error = new ConnectError(message, code as Code);
      error.details = details.map((any) => ({
        type: any.typeUrl.substring(any.typeUrl.lastIndexOf("/") + 1),
        value: any.value,
      }));
      return { state: "failed", error, ...times };
    }
    case "executed":
      return { state: "executed", resourceName: result.value.resourceName, ...times };
    default:
      throw new ConnectError("the server reported a completed outcome without a result", Code.Internal);
  }
}

function dateOf(timestamp: Timestamp | undefined): Date | undefined {
  return timestamp === undefined ? undefined : new Date(timestampMs(timestamp));
}
