import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { callWithRetry } from "../../src/client/call-with-retry.js";
import { type RetryEvent, type RetryOptions, resolveRetryPolicy } from "../../src/client/retry-policy.js";
import { ERROR_DOMAIN, ErrorReason } from "../../src/errors/error-reason.js";
import { createIdempotencyError } from "../../src/errors/idempotency-error.js";
import { isRetryableError } from "../../src/client/retryable-error.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";

const method = PaymentService.method.createPayment;

/** A fake clock and sleep: waiting moves the clock, no wall time passes. */
function createFakeTime() {
  const time = { now: 1_000_000, waits: [] as number[] };
  return {
    time,
    options: {
      clock: { now: () => time.now },
      sleep: (ms: number, signal: AbortSignal | undefined) => {
        if (signal?.aborted === true) {
          return Promise.reject(signal.reason);
        }
        time.waits.push(ms);
        time.now += ms;
        return Promise.resolve();
      },
    } satisfies RetryOptions,
  };
}

/** Runs a call whose attempts fail with `errors` in turn, then succeed. */
async function runScripted(
  errors: readonly ConnectError[],
  options: RetryOptions = {},
  extra: {
    signal?: AbortSignal;
    timeoutMs?: number;
    onAttempt?: (n: number, remainingMs: number | undefined) => void;
  } = {},
) {
  const fake = createFakeTime();
  const events: RetryEvent[] = [];
  let attempts = 0;
  const call = callWithRetry({
    method,
    requestId: "3f0c8d4e-5b7a-4c1e-9d2f-6a8b0c1d2e3f",
    policy: resolveRetryPolicy({ random: () => 0.5, onRetry: (e) => events.push(e), ...fake.options }, options),
    signal: extra.signal,
    timeoutMs: extra.timeoutMs,
    attempt: async (remainingMs) => {
      attempts++;
      extra.onAttempt?.(attempts, remainingMs);
      const error = errors[attempts - 1];
      if (error !== undefined) {
        throw error;
      }
      return "ok";
    },
  });
  const outcome = await call.then(
    (value) => ({ value, error: undefined }),
    (error: unknown) => ({ value: undefined, error: error as ConnectError }),
  );
  return { ...outcome, attempts: () => attempts, waits: fake.time.waits, events };
}

const unavailable = () => new ConnectError("down", Code.Unavailable);

describe("callWithRetry backoff", () => {
  it("waits 100, 200, 400, 800 ms between the five default attempts, then gives up with the last error", async () => {
    const errors = [1, 2, 3, 4, 5].map((n) => new ConnectError(`down ${n}`, Code.Unavailable));
    const run = await runScripted(errors);
    expect(run.attempts()).toBe(5);
    expect(run.waits).toEqual([100, 200, 400, 800]);
    expect(run.error?.rawMessage).toBe("down 5");
  });

  it("spreads each wait by at most ±20% and never waits longer than maxBackoffMs", async () => {
    const policy = { initialBackoffMs: 1_000, backoffMultiplier: 10, maxBackoffMs: 5_000, maxAttempts: 4 };
    const errors = [unavailable(), unavailable(), unavailable()];
    const low = await runScripted(errors, { ...policy, random: () => 0 });
    expect(low.waits).toEqual([800, 4_000, 4_000]);
    const high = await runScripted(errors, { ...policy, random: () => 0.999_999 });
    expect(high.waits[0]).toBeCloseTo(1_200, 2);
    expect(high.waits.slice(1)).toEqual([5_000, 5_000]);
    // Any random number keeps every wait inside its band.
    for (let i = 0; i < 200; i++) {
      const r = i / 200;
      const run = await runScripted([unavailable(), unavailable(), unavailable(), unavailable()], { random: () => r });
      run.waits.forEach((wait, n) => {
        const base = 100 * 2 ** n;
        expect(wait).toBeGreaterThanOrEqual(base * 0.8);
        expect(wait).toBeLessThanOrEqual(base * 1.2);
      });
    }
  });

  it("waits the server's RetryInfo delay for REQUEST_IN_PROGRESS instead of the backoff", async () => {
    const inProgress = createIdempotencyError(ErrorReason.REQUEST_IN_PROGRESS, "busy", { retryDelayMs: 1_234 });
    const run = await runScripted([inProgress, unavailable()]);
    expect(run.value).toBe("ok");
    expect(run.waits).toEqual([1_234, 200]);
  });

  it("reports each retry to onRetry with the attempt, error, delay and request ID", async () => {
    const first = unavailable();
    const run = await runScripted([first]);
    expect(run.events).toEqual([
      { method, attempt: 1, error: first, delayMs: 100, requestId: "3f0c8d4e-5b7a-4c1e-9d2f-6a8b0c1d2e3f" },
    ]);
  });

  it("makes one attempt only with maxAttempts: 1", async () => {
    const run = await runScripted([unavailable()], { maxAttempts: 1 });
    expect(run.attempts()).toBe(1);
    expect(run.error?.code).toBe(Code.Unavailable);
  });
});

describe("callWithRetry deadline and abort", () => {
  it("stops before a wait that would end after deadlineMs, and gives each attempt what remains", async () => {
    const remaining: (number | undefined)[] = [];
    const run = await runScripted(
      [unavailable(), unavailable(), unavailable(), unavailable()],
      { deadlineMs: 500 },
      {
        onAttempt: (_, ms) => remaining.push(ms),
      },
    );
    // 100 + 200 ms waited; the next 400 ms wait would end at 700 > 500.
    expect(run.attempts()).toBe(3);
    expect(run.waits).toEqual([100, 200]);
    expect(remaining).toEqual([500, 400, 200]);
    expect(run.error?.code).toBe(Code.Unavailable);
  });

  it("counts the time attempts take against the deadline", async () => {
    const fake = createFakeTime();
    let attempts = 0;
    const error = await callWithRetry({
      method,
      requestId: "x",
      policy: resolveRetryPolicy({ ...fake.options, random: () => 0.5, deadlineMs: 1_000 }),
      signal: undefined,
      timeoutMs: undefined,
      attempt: async () => {
        attempts++;
        fake.time.now += 450;
        throw unavailable();
      },
    }).catch((e: unknown) => e as ConnectError);
    // 450 + 100 (wait) + 450 = 1000 ms: no time is left for the 200 ms wait.
    expect(attempts).toBe(2);
    expect(fake.time.waits).toEqual([100]);
    expect(error.code).toBe(Code.Unavailable);
  });

  it("limits the whole call to the caller's timeoutMs when it is shorter than deadlineMs", async () => {
    const remaining: (number | undefined)[] = [];
    const run = await runScripted(
      [unavailable(), unavailable(), unavailable()],
      { deadlineMs: 10_000 },
      {
        timeoutMs: 250,
        onAttempt: (_, ms) => remaining.push(ms),
      },
    );
    expect(run.attempts()).toBe(2);
    expect(remaining).toEqual([250, 150]);
  });

  it("treats timeoutMs <= 0 as no timeout, as Connect does", async () => {
    const remaining: (number | undefined)[] = [];
    const run = await runScripted([unavailable()], {}, { timeoutMs: 0, onAttempt: (_, ms) => remaining.push(ms) });
    expect(run.value).toBe("ok");
    expect(remaining).toEqual([undefined, undefined]);
  });

  it("stops waiting and throws Canceled when the caller aborts during a wait", async () => {
    const controller = new AbortController();
    let attempts = 0;
    const error = await callWithRetry({
      method,
      requestId: "x",
      policy: resolveRetryPolicy({
        random: () => 0.5,
        sleep: (_ms, signal) =>
          new Promise<void>((_resolve, reject) => {
            signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
            controller.abort();
          }),
      }),
      signal: controller.signal,
      timeoutMs: undefined,
      attempt: async () => {
        attempts++;
        throw unavailable();
      },
    }).catch((e: unknown) => e as ConnectError);
    expect(attempts).toBe(1);
    expect(error.code).toBe(Code.Canceled);
  });

  it("does not retry once the caller's signal has aborted", async () => {
    const controller = new AbortController();
    const run = await runScripted(
      [unavailable(), unavailable()],
      {},
      {
        signal: controller.signal,
        onAttempt: () => controller.abort(),
      },
    );
    expect(run.attempts()).toBe(1);
    expect(run.waits).toEqual([]);
    expect(run.error?.code).toBe(Code.Unavailable);
  });
});

describe("callWithRetry error codes", () => {
  const reset = () =>
    new ConnectError(
      "read ECONNRESET",
      Code.Aborted,
      undefined,
      undefined,
      Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }),
    );
  const retried: [string, () => ConnectError][] = [
    ["Unavailable", unavailable],
    ["DeadlineExceeded of one attempt", () => new ConnectError("slow", Code.DeadlineExceeded)],
    ["ResourceExhausted", () => new ConnectError("busy", Code.ResourceExhausted)],
    ["Aborted REQUEST_IN_PROGRESS", () => createIdempotencyError(ErrorReason.REQUEST_IN_PROGRESS, "busy")],
    ["Unavailable STORE_UNAVAILABLE", () => createIdempotencyError(ErrorReason.STORE_UNAVAILABLE, "store")],
    ["Aborted caused by ECONNRESET", reset],
    [
      "Unknown caused by a broken socket (fetch)",
      () =>
        new ConnectError(
          "fetch failed",
          Code.Unknown,
          undefined,
          undefined,
          new TypeError("fetch failed", {
            cause: Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" }),
          }),
        ),
    ],
    [
      "Internal caused by an HTTP/2 stream error",
      () =>
        new ConnectError(
          "stream",
          Code.Internal,
          undefined,
          undefined,
          Object.assign(new Error("x"), { code: "ERR_HTTP2_STREAM_ERROR" }),
        ),
    ],
    [
      "Canceled by the peer (HTTP/2 stream closed with CANCEL)",
      () => new ConnectError("http/2 stream closed with error code CANCEL (0x8)", Code.Canceled),
    ],
  ];
  it.each(retried)("retries %s", async (_, error) => {
    const run = await runScripted([error()]);
    expect(run.value).toBe("ok");
    expect(run.attempts()).toBe(2);
  });

  const final: [string, () => ConnectError][] = [
    ["InvalidArgument", () => new ConnectError("bad", Code.InvalidArgument)],
    ["FailedPrecondition REQUEST_ID_REUSED", () => createIdempotencyError(ErrorReason.REQUEST_ID_REUSED, "reused")],
    ["AlreadyExists", () => new ConnectError("exists", Code.AlreadyExists)],
    ["PermissionDenied", () => new ConnectError("no", Code.PermissionDenied)],
    ["Unauthenticated", () => new ConnectError("who", Code.Unauthenticated)],
    ["NotFound", () => new ConnectError("gone", Code.NotFound)],
    ["Internal sent by the server", () => new ConnectError("bug", Code.Internal)],
    ["Unknown sent by the server", () => new ConnectError("?", Code.Unknown)],
    ["Aborted without a reason", () => new ConnectError("conflict", Code.Aborted)],
    // Under a code that is retried otherwise: the reason alone stops the retry.
    [
      "RESPONSE_TOO_LARGE",
      () =>
        new ConnectError("big", Code.ResourceExhausted, undefined, [
          { desc: ErrorInfoSchema, value: { reason: ErrorReason.RESPONSE_TOO_LARGE, domain: ERROR_DOMAIN } },
        ]),
    ],
  ];
  it.each(final)("does not retry %s", async (_, error) => {
    const first = error();
    const run = await runScripted([first]);
    expect(run.attempts()).toBe(1);
    expect(run.error).toBe(first);
  });
});

describe("resolveRetryPolicy", () => {
  it("lets later options win where they set a value, over the defaults", () => {
    const policy = resolveRetryPolicy(
      { maxAttempts: 3, initialBackoffMs: 50 },
      { maxAttempts: 7, initialBackoffMs: undefined },
    );
    expect(policy).toMatchObject({
      maxAttempts: 7,
      initialBackoffMs: 50,
      maxBackoffMs: 5_000,
      backoffMultiplier: 2,
      jitter: 0.2,
    });
    expect(policy.deadlineMs).toBeUndefined();
  });

  it.each([
    [{ maxAttempts: 0 }, /maxAttempts/],
    [{ maxAttempts: 1.5 }, /maxAttempts/],
    [{ initialBackoffMs: 10, maxBackoffMs: 5 }, /maxBackoffMs/],
    [{ backoffMultiplier: 0.5 }, /backoffMultiplier/],
    [{ jitter: 1 }, /jitter/],
    [{ deadlineMs: 0 }, /deadlineMs/],
  ] as const)("refuses %o", (options, message) => {
    expect(() => resolveRetryPolicy(options)).toThrow(message);
  });
});

describe("callWithRetry and idempotency-expires", () => {
  // The fake clock starts at 1,000,000 ms; waits are 100, 200, 400, 800 ms.
  const withExpiry = (expiresAt: number | undefined) => {
    const error = new ConnectError("down", Code.Unavailable);
    if (expiresAt !== undefined) {
      error.metadata.set("idempotency-expires", new Date(expiresAt).toISOString());
    }
    return error;
  };

  it("never starts a retry at or after the announced expiry: fails with UNKNOWN OUTCOME_UNKNOWN", async () => {
    // Retries start at +100 and +300; the next would start at +700, past +500.
    const run = await runScripted([
      withExpiry(1_000_500),
      withExpiry(undefined),
      withExpiry(undefined),
      withExpiry(undefined),
    ]);
    expect(run.attempts()).toBe(3);
    expect(run.waits).toEqual([100, 200]);
    expect(run.error?.code).toBe(Code.Unknown);
    expect(run.error?.findDetails(ErrorInfoSchema)[0]).toMatchObject({
      reason: ErrorReason.OUTCOME_UNKNOWN,
      metadata: { expires_at: new Date(1_000_500).toISOString(), request_id: "3f0c8d4e-5b7a-4c1e-9d2f-6a8b0c1d2e3f" },
    });
    expect(run.error?.cause).toBeInstanceOf(ConnectError);
    expect(isRetryableError(run.error as ConnectError)).toBe(false);
  });

  it("follows the latest announcement, and retries as usual without one", async () => {
    const later = await runScripted([withExpiry(1_000_150), withExpiry(1_010_000), withExpiry(undefined)]);
    expect(later.error).toBeUndefined();
    expect(later.attempts()).toBe(4);
    const none = await runScripted([withExpiry(undefined), withExpiry(undefined)]);
    expect(none.value).toBe("ok");
  });
});
