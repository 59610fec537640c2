/** The switches of the checkout's flaky network, as the page sets them. */
export interface NetworkFaults {
  /** How many of the next answers are dropped after the server ran the call. */
  dropAnswers: number;
  /** How many of the next connections are reset before the request reaches the server. */
  resetConnections: number;
  /** How long every answer is held back, in milliseconds: a slow handler, as the browser sees it. */
  holdAnswerMs: number;
  /** Whether CORS lets the page read the idempotency headers. Off shows what a page sees without them. */
  exposeIdempotencyHeaders: boolean;
}

/** What happened to one RPC on the checkout's network, for the page's log and the tests. */
export interface NetworkAttempt {
  /** The RPC path, such as `/demo.v1.PaymentService/CreatePayment`. */
  readonly path: string;
  /** The request ID in the request's JSON body; "" when there is none. */
  readonly requestId: string;
  /** What the network did with it. */
  readonly fate: "answered" | "answer dropped" | "connection reset";
  /** The `idempotency-replayed` header the server sent, before CORS decides what the page may read. */
  readonly replayed: boolean;
  /** When it arrived, in epoch milliseconds. */
  readonly at: number;
}

/** The faults of a network that works. */
export function createNetworkFaults(): NetworkFaults {
  return { dropAnswers: 0, resetConnections: 0, holdAnswerMs: 0, exposeIdempotencyHeaders: true };
}

/**
 * Applies the switches in `input` (JSON from the page) to `faults`, ignoring
 * anything that is not a switch of the right type.
 */
export function updateNetworkFaults(faults: NetworkFaults, input: unknown): void {
  if (typeof input !== "object" || input === null) {
    return;
  }
  const record = input as Record<string, unknown>;
  const count = (value: unknown) =>
    typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 100 ? value : undefined;
  faults.dropAnswers = count(record.dropAnswers) ?? faults.dropAnswers;
  faults.resetConnections = count(record.resetConnections) ?? faults.resetConnections;
  const hold = record.holdAnswerMs;
  if (typeof hold === "number" && hold >= 0 && hold <= 30_000) {
    faults.holdAnswerMs = hold;
  }
  if (typeof record.exposeIdempotencyHeaders === "boolean") {
    faults.exposeIdempotencyHeaders = record.exposeIdempotencyHeaders;
  }
}
