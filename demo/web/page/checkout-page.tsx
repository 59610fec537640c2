// The checkout page of `npm start -- --web`, bundled by esbuild for the
// browser. It pays through connect-web two ways: the generated client with
// pending request IDs in localStorage, and connect-query's useMutation with
// TanStack Query retries. Every attempt, replay and charge is logged on the page.
import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { TransportProvider, useMutation } from "@connectrpc/connect-query";
import { createConnectTransport } from "@connectrpc/connect-web";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { useCallback, useEffect, useMemo, useState } from "react";
import { createRoot } from "react-dom/client";
import { createPaymentServiceClient } from "../../../gen/demo/v1/payments_idempotency.js";
import { PaymentService } from "../../../gen/demo/v1/payments_pb.js";
import {
  callWithOutcome,
  createRequestIdInterceptor,
  createWebStoragePendingRequestIds,
  findErrorReason,
  idempotentMutationOptions,
  randomRequestId,
  readReplayInfo,
  withPendingKey,
} from "../../../src/client/index.js";

interface CartItem {
  readonly name: string;
  readonly priceMinor: number;
}

interface LogEntry {
  readonly id: number;
  readonly via: "client" | "tanstack";
  readonly kind: "attempt" | "paid" | "failed";
  readonly text: string;
  readonly requestId: string;
  readonly replayed: boolean;
}

interface NetworkState {
  readonly faults: {
    dropAnswers: number;
    resetConnections: number;
    holdAnswerMs: number;
    exposeIdempotencyHeaders: boolean;
  };
  readonly attempts: { path: string; requestId: string; fate: string; replayed: boolean }[];
  readonly charges: { chargeId: string; amountMinor: string; paymentRequestId: string }[];
}

const root = document.getElementById("root");
const apiBaseUrl = `${location.protocol}//${location.hostname}:${root?.dataset.apiPort ?? "8081"}`;
const params = new URLSearchParams(location.search);
const account = params.get("account") ?? "acct-web";
// `?pending=off` shows what a reload did before pending request IDs.
const keepPendingIds = params.get("pending") !== "off";
const startCart: CartItem[] = [
  { name: "Espresso beans 1 kg", priceMinor: 2490 },
  { name: "Milk frother", priceMinor: 1750 },
];

// The cart and the checkout survive a reload, as a shop's would.
function stored<T>(key: string, fallback: () => T): T {
  const text = sessionStorage.getItem(key);
  if (text !== null) {
    return JSON.parse(text) as T;
  }
  const value = fallback();
  sessionStorage.setItem(key, JSON.stringify(value));
  return value;
}
const checkoutId = stored("checkout-id", () => randomRequestId());

let nextLogId = 1;
type Log = (entry: Omit<LogEntry, "id">) => void;

// Logs every attempt the transport makes, with the request ID it carried
// and whether the answer was a replay, as the page can read it (CORS).
function attemptLogger(via: LogEntry["via"], log: Log): Interceptor {
  return (next) => async (req) => {
    const requestId = String((req.message as { requestId?: unknown }).requestId ?? "");
    try {
      const res = await next(req);
      const { replayed } = readReplayInfo(res.header);
      log({ via, kind: "attempt", requestId, replayed, text: replayed ? "answer: replayed" : "answer: new" });
      return res;
    } catch (e) {
      const error = ConnectError.from(e);
      log({
        via,
        kind: "attempt",
        requestId,
        replayed: readReplayInfo(error.metadata).replayed,
        text: `failed: ${error.message}`,
      });
      throw error;
    }
  };
}

function cartRequest(cart: readonly CartItem[]) {
  return {
    accountId: account,
    amountMinor: BigInt(cart.reduce((sum, item) => sum + item.priceMinor, 0)),
    currency: "EUR",
    metadata: { items: cart.map((item) => item.name).join("; ") },
  };
}

function Checkout() {
  const [cart, setCart] = useState<CartItem[]>(() => stored("cart", () => startCart));
  const [log, setLog] = useState<LogEntry[]>([]);
  const [network, setNetwork] = useState<NetworkState | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const [drop, setDrop] = useState(0);
  const [reset, setReset] = useState(0);
  const [hold, setHold] = useState(0);
  const [expose, setExpose] = useState(true);
  const append = useCallback<Log>((entry) => setLog((entries) => [...entries, { ...entry, id: nextLogId++ }]), []);

  const client = useMemo(
    () =>
      createPaymentServiceClient(
        createConnectTransport({ baseUrl: apiBaseUrl, interceptors: [attemptLogger("client", append)] }),
        {
          ...(keepPendingIds ? { pendingRequestIds: createWebStoragePendingRequestIds(localStorage) } : {}),
          initialBackoffMs: 150,
        },
      ),
    [append],
  );
  // For TanStack: no retry of our own, so that every retry is TanStack's.
  const tanstackTransport = useMemo(
    () =>
      createConnectTransport({
        baseUrl: apiBaseUrl,
        interceptors: [createRequestIdInterceptor(), attemptLogger("tanstack", append)],
      }),
    [append],
  );
  const tanstackPay = useMutation(
    PaymentService.method.createPayment,
    idempotentMutationOptions({
      transport: tanstackTransport,
      retry: 3,
      retryDelay: 150,
      onSuccess: (response: { payment?: { paymentId: string } }) =>
        append({
          via: "tanstack",
          kind: "paid",
          requestId: "",
          replayed: false,
          text: `paid: ${response.payment?.paymentId ?? "?"}`,
        }),
      onError: (error: Error) =>
        append({ via: "tanstack", kind: "failed", requestId: "", replayed: false, text: error.message }),
    }),
  );

  useEffect(() => {
    let stopped = false;
    const poll = async () => {
      try {
        const res = await fetch(`/api/state?account=${encodeURIComponent(account)}`);
        if (!stopped) {
          setNetwork((await res.json()) as NetworkState);
        }
      } catch {
        // The next poll tries again.
      }
    };
    void poll();
    const timer = setInterval(poll, 400);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, []);

  const updateCart = (next: CartItem[]) => {
    sessionStorage.setItem("cart", JSON.stringify(next));
    setCart(next);
  };

  const applyNetwork = async () => {
    const res = await fetch("/api/network", {
      method: "POST",
      body: JSON.stringify({
        dropAnswers: drop,
        resetConnections: reset,
        holdAnswerMs: hold,
        exposeIdempotencyHeaders: expose,
      }),
    });
    const faults = (await res.json()) as NetworkState["faults"];
    setNetwork((state) => (state === undefined ? state : { ...state, faults }));
  };

  const pay = async () => {
    setBusy(true);
    try {
      const outcome = await callWithOutcome(client.createPayment, cartRequest(cart), {
        contextValues: withPendingKey(checkoutId),
      });
      const when =
        outcome.firstExecutedAt === undefined ? "" : ` (first executed ${outcome.firstExecutedAt.toISOString()})`;
      append({
        via: "client",
        kind: "paid",
        requestId: outcome.requestId ?? "",
        replayed: outcome.replayed,
        text: outcome.replayed
          ? `already paid: ${outcome.response.payment?.paymentId ?? "?"} is the earlier charge, replayed${when}`
          : `paid: ${outcome.response.payment?.paymentId ?? "?"}`,
      });
    } catch (e) {
      const error = ConnectError.from(e);
      append({
        via: "client",
        kind: "failed",
        requestId: "",
        replayed: false,
        text: `${findErrorReason(error) ?? error.code}: ${error.rawMessage}`,
      });
    } finally {
      setBusy(false);
    }
  };

  const total = cart.reduce((sum, item) => sum + item.priceMinor, 0);
  const faults = network?.faults;
  return (
    <>
      <h1>Checkout</h1>
      <div className="grid">
        <div>
          <div className="card">
            <h2>Cart of {account}</h2>
            {cart.map((item, i) => (
              <div
                // biome-ignore lint/suspicious/noArrayIndexKey: the cart can hold the same item twice; rows have no other identity.
                key={i}
              >
                {item.name}: {(item.priceMinor / 100).toFixed(2)} EUR
              </div>
            ))}
            <p>
              <b data-testid="total">Total {(total / 100).toFixed(2)} EUR</b>
            </p>
            <button type="button" className="primary" data-testid="pay" disabled={busy} onClick={() => void pay()}>
              Pay
            </button>
            <button
              type="button"
              data-testid="pay-tanstack"
              disabled={tanstackPay.isPending}
              onClick={() => tanstackPay.mutate(cartRequest(cart))}
            >
              Pay with TanStack Query (retry: 3)
            </button>
            <button
              type="button"
              data-testid="add-item"
              onClick={() => updateCart([...cart, { name: "Gift card", priceMinor: 500 }])}
            >
              Add a gift card
            </button>
            <p className="muted">
              Checkout {checkoutId}. {busy ? <span data-testid="paying">Paying…</span> : null}
            </p>
          </div>
          <div className="card">
            <h2>Network</h2>
            <label>
              Drop the next{" "}
              <input
                data-testid="drop"
                type="number"
                min="0"
                value={drop}
                onChange={(e) => setDrop(Number(e.target.value))}
              />{" "}
              answers (after the server ran)
            </label>
            <label>
              Reset the next{" "}
              <input
                data-testid="reset"
                type="number"
                min="0"
                value={reset}
                onChange={(e) => setReset(Number(e.target.value))}
              />{" "}
              connections
            </label>
            <label>
              Hold every answer{" "}
              <input
                data-testid="hold"
                type="number"
                min="0"
                step="100"
                value={hold}
                onChange={(e) => setHold(Number(e.target.value))}
              />{" "}
              ms
            </label>
            <label>
              <input
                data-testid="expose"
                type="checkbox"
                checked={expose}
                onChange={(e) => setExpose(e.target.checked)}
              />{" "}
              CORS exposes the idempotency headers
            </label>
            <button type="button" data-testid="apply-network" onClick={() => void applyNetwork()}>
              Apply
            </button>
            <p data-testid="network-state" className="muted">
              {faults === undefined
                ? "…"
                : `drop ${faults.dropAnswers}, reset ${faults.resetConnections}, hold ${faults.holdAnswerMs} ms, headers ${faults.exposeIdempotencyHeaders ? "exposed" : "hidden"}`}
            </p>
          </div>
          <div className="card">
            <h2>Bank charges</h2>
            <table data-testid="charges">
              <tbody>
                {(network?.charges ?? []).map((charge) => (
                  <tr key={charge.chargeId}>
                    <td>{charge.chargeId}</td>
                    <td>{(Number(charge.amountMinor) / 100).toFixed(2)}</td>
                    <td>{charge.paymentRequestId.slice(0, 8)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <p data-testid="charge-count">{network?.charges.length ?? 0} charge(s) for this account</p>
          </div>
        </div>
        <div className="card">
          <h2>Log</h2>
          <table data-testid="log">
            <tbody>
              {log.map((entry) => (
                <tr
                  key={entry.id}
                  data-kind={entry.kind}
                  data-via={entry.via}
                  data-replayed={String(entry.replayed)}
                  data-request-id={entry.requestId}
                >
                  <td>{entry.via}</td>
                  <td>{entry.requestId.slice(0, 8)}</td>
                  <td className={entry.replayed ? "replayed" : entry.kind === "failed" ? "error" : ""}>{entry.text}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h2 style={{ marginTop: 16 }}>What the network saw</h2>
          <table data-testid="network-log">
            <tbody>
              {(network?.attempts ?? []).slice(-12).map((attempt, i) => (
                <tr
                  // biome-ignore lint/suspicious/noArrayIndexKey: a retry repeats the request ID; rows have no other identity.
                  key={i}
                >
                  <td>{attempt.requestId.slice(0, 8)}</td>
                  <td>{attempt.fate}</td>
                  <td>{attempt.replayed ? "idempotency-replayed: true" : ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </div>
    </>
  );
}

const queryClient = new QueryClient();
if (root !== null) {
  createRoot(root).render(
    <QueryClientProvider client={queryClient}>
      <TransportProvider transport={createConnectTransport({ baseUrl: apiBaseUrl })}>
        <Checkout />
      </TransportProvider>
    </QueryClientProvider>,
  );
}
