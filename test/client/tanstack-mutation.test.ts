import { callUnaryMethod } from "@connectrpc/connect-query-core";
import { createConnectTransport } from "@connectrpc/connect-node";
import { MutationObserver, QueryClient } from "@tanstack/query-core";
import { afterEach, describe, expect, it } from "vitest";
import { createClient } from "@connectrpc/connect";
import { createPaymentServiceClient, createPaymentServiceTransport } from "../../gen/demo/v1/payments_idempotency.js";
import { FixtureService } from "../../gen/fixture/v1/fixture_pb.js";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import {
  callWithOutcome,
  createRequestIdInterceptor,
  idempotentMutationFn,
  idempotentMutationOptions,
} from "../../src/client/index.js";
import { createHostileInterceptor, createHostileTransport } from "../../src/testing/hostile-transport.js";
import { scriptedRandom } from "../support/attempt-recorder.js";
import { useRecordingTestServer } from "../support/recording-test-server.js";

const recording = useRecordingTestServer();
const queryClients: QueryClient[] = [];
afterEach(() => {
  for (const client of queryClients.splice(0)) {
    client.clear();
  }
});

// The first `lost` answers are dropped after the server ran the call; every
// later one arrives. One random number per call decides (see the hostile network).
const losing = (lost: number) => ({
  dropRate: 0.5,
  random: scriptedRandom(...Array.from({ length: lost }, () => 0.1)),
});

function queryClient(): QueryClient {
  const client = new QueryClient();
  queryClients.push(client);
  return client;
}

// What a checkout sends: a fresh variables object per click.
const cart = () => ({ accountId: "acct_tanstack", amountMinor: 4200n, currency: "EUR" });

describe("idempotentMutationFn with @tanstack/query-core MutationObserver", () => {
  // The generated client makes one attempt, so that every retry is TanStack's.
  const generatedClient = (lost: number) =>
    createPaymentServiceClient(
      createHostileTransport(
        createConnectTransport({ baseUrl: recording.server.baseUrl, httpVersion: "2" }),
        losing(lost),
      ),
      { maxAttempts: 1 },
    );

  it("sends one request ID on every TanStack retry: retry 3, three answers lost, one execution", async () => {
    const client = generatedClient(3);
    const observer = new MutationObserver(queryClient(), {
      mutationFn: idempotentMutationFn((request: ReturnType<typeof cart>, callOptions) =>
        callWithOutcome(client.createPayment, request, callOptions),
      ),
      retry: 3,
      retryDelay: 1,
    });
    const outcome = await observer.mutate(cart());
    const ids = recording.attempts.map((a) => a.requestId);
    expect(ids).toHaveLength(4);
    expect(new Set(ids).size).toBe(1);
    expect(recording.server.runs.map((r) => r.requestId)).toEqual([ids[0]]);
    expect(outcome.requestId).toBe(ids[0]);
    // The answer that arrived is the stored one of the first attempt.
    expect(outcome.replayed).toBe(true);
    expect(outcome.response.payment?.paymentId).toBe("pay_1");
  });

  it("without the helper, the same mutation runs the handler once per attempt with a new ID each time", async () => {
    const client = generatedClient(3);
    const observer = new MutationObserver(queryClient(), {
      mutationFn: (request: ReturnType<typeof cart>) => client.createPayment(request),
      retry: 3,
      retryDelay: 1,
    });
    await observer.mutate(cart());
    expect(new Set(recording.attempts.map((a) => a.requestId)).size).toBe(4);
    expect(recording.server.runs).toHaveLength(4);
  });

  it("keeps a request ID the caller put in the variables", async () => {
    const client = generatedClient(2);
    const own = "0b7f3a52-8a44-4c6e-9d0e-2b9a1c3d4e5f";
    const observer = new MutationObserver(queryClient(), {
      mutationFn: idempotentMutationFn((request: ReturnType<typeof cart> & { requestId: string }, callOptions) =>
        client.createPayment(request, callOptions),
      ),
      retry: 3,
      retryDelay: 1,
    });
    await observer.mutate({ ...cart(), requestId: own });
    expect(recording.attempts.map((a) => a.requestId)).toEqual([own, own, own]);
    expect(recording.server.runs).toHaveLength(1);
  });

  it("gives a deliberate second mutate() of the same variables object a new ID", async () => {
    const client = generatedClient(0);
    const observer = new MutationObserver(queryClient(), {
      mutationFn: idempotentMutationFn((request: ReturnType<typeof cart>, callOptions) =>
        client.createPayment(request, callOptions),
      ),
    });
    const same = cart();
    await observer.mutate(same);
    await observer.mutate(same);
    expect(new Set(recording.attempts.map((a) => a.requestId)).size).toBe(2);
    expect(recording.server.runs).toHaveLength(2);
  });

  it("keeps the ID across the client's own retries and TanStack's together", async () => {
    // Two attempts per client call, five answers lost: TanStack's third call gets through.
    const client = createPaymentServiceClient(
      createHostileTransport(
        createConnectTransport({ baseUrl: recording.server.baseUrl, httpVersion: "2" }),
        losing(5),
      ),
      { maxAttempts: 2, sleep: async () => undefined },
    );
    const observer = new MutationObserver(queryClient(), {
      mutationFn: idempotentMutationFn((request: ReturnType<typeof cart>, callOptions) =>
        client.createPayment(request, callOptions),
      ),
      retry: 3,
      retryDelay: 1,
    });
    await observer.mutate(cart());
    expect(recording.attempts).toHaveLength(6);
    expect(new Set(recording.attempts.map((a) => a.requestId)).size).toBe(1);
    expect(recording.server.runs).toHaveLength(1);
  });
});

describe("idempotentMutationOptions with connect-query's mutationFn (callUnaryMethod)", () => {
  // What connect-query's `useMutation(method, options)` builds: a mutationFn
  // that calls `callUnaryMethod(transport, method, variables)`, which makes a
  // new request message on every attempt. The React hook itself runs in the
  // browser test.
  function connectQueryObserver(options: { transport: ReturnType<typeof createConnectTransport>; retry: number }) {
    const { transport, ...rest } = options;
    return new MutationObserver(queryClient(), {
      ...rest,
      retryDelay: 1,
      mutationFn: (input: ReturnType<typeof cart>) =>
        callUnaryMethod(transport, PaymentService.method.createPayment, input),
    });
  }
  // The transport a connect-web app would have: the request ID interceptor
  // and, last, a network that loses answers.
  const interceptorTransport = (lost: number) =>
    createConnectTransport({
      baseUrl: recording.server.baseUrl,
      httpVersion: "2",
      interceptors: [createRequestIdInterceptor(), createHostileInterceptor(losing(lost))],
    });

  it("sends one request ID on every TanStack retry: retry 3, three answers lost, one execution", async () => {
    const onMutateSeen: unknown[] = [];
    const options = idempotentMutationOptions({
      transport: interceptorTransport(3),
      retry: 3,
      onMutate: (variables: ReturnType<typeof cart>) => {
        onMutateSeen.push(variables);
      },
    });
    const observer = new MutationObserver(queryClient(), {
      retry: options.retry,
      retryDelay: 1,
      onMutate: options.onMutate,
      mutationFn: (input: ReturnType<typeof cart>) =>
        callUnaryMethod(options.transport, PaymentService.method.createPayment, input),
    });
    const variables = cart();
    await observer.mutate(variables);
    const ids = recording.attempts.map((a) => a.requestId);
    expect(ids).toHaveLength(4);
    expect(new Set(ids).size).toBe(1);
    expect(recording.server.runs).toHaveLength(1);
    // The caller's own onMutate still ran, once.
    expect(onMutateSeen).toEqual([variables]);
  });

  it("without the helper, every TanStack retry carries a new ID and runs the handler again", async () => {
    await connectQueryObserver({ transport: interceptorTransport(3), retry: 3 }).mutate(cart());
    expect(new Set(recording.attempts.map((a) => a.requestId)).size).toBe(4);
    expect(recording.server.runs).toHaveLength(4);
  });

  it("works with a generated create<Service>Transport too, which leaves other services' calls alone", async () => {
    const base = createHostileTransport(
      createConnectTransport({ baseUrl: recording.server.baseUrl, httpVersion: "2" }),
      losing(3),
    );
    const options = idempotentMutationOptions({
      transport: createPaymentServiceTransport(base, { maxAttempts: 1 }),
      retry: 3,
    });
    const observer = new MutationObserver(queryClient(), {
      retry: options.retry,
      retryDelay: 1,
      onMutate: (options as { onMutate?: (v: unknown) => unknown }).onMutate,
      mutationFn: (input: ReturnType<typeof cart>) =>
        callUnaryMethod(options.transport, PaymentService.method.createPayment, input),
    });
    await observer.mutate(cart());
    expect(recording.attempts).toHaveLength(4);
    expect(new Set(recording.attempts.map((a) => a.requestId)).size).toBe(1);
    expect(recording.server.runs).toHaveLength(1);
    // FixtureService's Opaque has a request ID field too; this transport is not its client.
    const fixture = createClient(
      FixtureService,
      createPaymentServiceTransport(createConnectTransport({ baseUrl: recording.server.baseUrl, httpVersion: "2" })),
    );
    await fixture.opaque({ text: "x" });
    expect(recording.attempts.at(-1)).toMatchObject({ method: "opaque", requestId: "" });
  });
});
