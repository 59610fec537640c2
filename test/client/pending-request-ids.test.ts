import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { createPaymentServiceClient } from "../../gen/demo/v1/payments_idempotency.js";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import {
  ErrorReason,
  type IdempotentClientOptions,
  type PendingRequestIds,
  type WebStorageLike,
  createMemoryPendingRequestIds,
  createRequestIdInterceptor,
  createWebStoragePendingRequestIds,
  findErrorReason,
  withPendingKey,
} from "../../src/client/index.js";
import { createFilePendingRequestIds } from "../../src/client/node/index.js";
import { idempotencyContext } from "../../src/server/idempotency-context.js";
import { createHostileInterceptor, createHostileTransport } from "../../src/testing/hostile-transport.js";
import { scriptedRandom } from "../support/attempt-recorder.js";
import { expectConnectError } from "../support/connect-assertions.js";
import { startIdempotencyTestServer } from "../support/idempotency-test-server.js";
import { usePerTestScratch } from "../support/per-test-scratch.js";
import { useRecordingTestServer } from "../support/recording-test-server.js";

const recording = useRecordingTestServer();
const scratch = usePerTestScratch("pending-ids-");

const cart = (amountMinor = 1999n) => ({ accountId: "acct_pending", amountMinor, currency: "EUR" });

// A client whose first `lost` answers are dropped after the server ran the
// call, retrying at most twice per call, waiting no wall time.
function client(pending: PendingRequestIds, lost = 0, options: IdempotentClientOptions = {}) {
  const transport = createHostileTransport(
    createConnectTransport({ baseUrl: recording.server.baseUrl, httpVersion: "2" }),
    {
      dropRate: 0.5,
      random: scriptedRandom(...Array.from({ length: lost }, () => 0.1)),
    },
  );
  return createPaymentServiceClient(transport, {
    maxAttempts: 2,
    sleep: async () => undefined,
    pendingRequestIds: pending,
    ...options,
  });
}

// A Storage over a Map: what `localStorage` offers, for Node. The browser
// test runs the real one.
function mapStorage(): WebStorageLike & { readonly items: Map<string, string> } {
  const items = new Map<string, string>();
  return {
    items,
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
    get length() {
      return items.size;
    },
    key: (index) => [...items.keys()][index] ?? null,
  };
}

const backends: [string, () => PendingRequestIds][] = [
  ["memory", () => createMemoryPendingRequestIds()],
  ["web storage", () => createWebStoragePendingRequestIds(mapStorage())],
  ["file", () => createFilePendingRequestIds(join(scratch.dir, "pending.json"))],
];

describe.each(backends)("pending request IDs (%s)", (_name, createBackend) => {
  it("sends the same content again under the pending ID after every answer was lost: one execution", async () => {
    const pending = createBackend();
    const error = await expectConnectError(client(pending, 2).createPayment(cart()));
    expect(error.code).toBe(Code.Unavailable);
    // A new client (a reloaded page, a restarted process) over the same store.
    const response = await client(pending).createPayment(cart());
    const ids = recording.attempts.map((a) => a.requestId);
    expect(ids).toHaveLength(3);
    expect(new Set(ids).size).toBe(1);
    expect(recording.server.runs).toHaveLength(1);
    expect(response.payment?.paymentId).toBe("pay_1");
  });

  it("sends two calls of the same content at once (a double click) under one ID: one execution", async () => {
    const pending = createBackend();
    // The second call meets the first in flight and comes back after the
    // server's RetryInfo delay, cut to 20 ms.
    const payments = client(pending, 0, {
      maxAttempts: 20,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.min(ms, 20))),
    });
    const [a, b] = await Promise.all([payments.createPayment(cart()), payments.createPayment(cart())]);
    expect(new Set(recording.attempts.map((attempt) => attempt.requestId)).size).toBe(1);
    expect(recording.server.runs).toHaveLength(1);
    expect(b.payment?.paymentId).toBe(a.payment?.paymentId);
  });

  it("gives a deliberate second purchase after a definite answer a new ID", async () => {
    const pending = createBackend();
    await client(pending).createPayment(cart());
    await client(pending).createPayment(cart());
    expect(new Set(recording.attempts.map((a) => a.requestId)).size).toBe(2);
    expect(recording.server.runs).toHaveLength(2);
  });

  it("gives other content a new ID while the first is pending", async () => {
    const pending = createBackend();
    await expectConnectError(client(pending, 2).createPayment(cart(1000n)));
    await client(pending).createPayment(cart(2000n));
    expect(new Set(recording.attempts.map((a) => a.requestId)).size).toBe(2);
    expect(recording.server.runs).toHaveLength(2);
  });

  it("sends changed content under a caller's pending key with the pending ID: REQUEST_ID_REUSED, explained", async () => {
    const pending = createBackend();
    const checkout = { contextValues: withPendingKey("cart-7") };
    await expectConnectError(client(pending, 2).createPayment(cart(1000n), checkout));
    const error = await expectConnectError(
      client(pending).createPayment(cart(1500n), { contextValues: withPendingKey("cart-7") }),
    );
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(findErrorReason(error)).toBe(ErrorReason.REQUEST_ID_REUSED);
    const id = recording.attempts[0]?.requestId;
    expect(error.rawMessage).toContain(
      `request ID ${id} was first sent with other content to demo.v1.PaymentService/CreatePayment`,
    );
    expect(error.rawMessage).toContain("send it with a new request ID");
    expect(recording.server.runs).toHaveLength(1);
    // The refusal is definite: the next payment of that cart is a new one.
    await client(pending).createPayment(cart(1500n), { contextValues: withPendingKey("cart-7") });
    expect(recording.attempts.at(-1)?.requestId).not.toBe(id);
    expect(recording.server.runs).toHaveLength(2);
  });
});

describe("pending request IDs", () => {
  it("stop counting once they expire", async () => {
    let now = 1_000_000;
    const pending = createMemoryPendingRequestIds({ clock: { now: () => now } });
    await expectConnectError(client(pending, 2, { pendingTtlMs: 60_000 }).createPayment(cart()));
    now += 60_001;
    await client(pending, 0, { pendingTtlMs: 60_000 }).createPayment(cart());
    expect(new Set(recording.attempts.map((a) => a.requestId)).size).toBe(2);
  });

  it("keep only IDs and expiry in web storage, and nothing after a definite answer", async () => {
    const storage = mapStorage();
    const pending = createWebStoragePendingRequestIds(storage);
    await expectConnectError(client(pending, 2).createPayment({ ...cart(), metadata: { note: "secret-note" } }));
    expect(storage.items.size).toBe(1);
    const [[key, value]] = [...storage.items];
    expect(key).toMatch(/^connect-idempotency:pending:demo\.v1\.PaymentService\/CreatePayment#[0-9a-f]{16}$/);
    expect(value).not.toContain("secret-note");
    expect(JSON.parse(value ?? "")).toMatchObject({ requestId: recording.attempts[0]?.requestId });
    await client(pending).createPayment({ ...cart(), metadata: { note: "secret-note" } });
    expect(storage.items.size).toBe(0);
  });

  it("work the same through createRequestIdInterceptor, which settles on what it sees below it", async () => {
    const pending = createMemoryPendingRequestIds();
    // The lossy network is below the interceptor, as a real one is; no retry
    // interceptor, so that the first call ends with its answer lost.
    const interceptorClient = (lost: number) =>
      createClient(
        PaymentService,
        createConnectTransport({
          baseUrl: recording.server.baseUrl,
          httpVersion: "2",
          interceptors: [
            createRequestIdInterceptor({ pendingRequestIds: pending }),
            createHostileInterceptor({
              dropRate: 0.5,
              random: scriptedRandom(...Array.from({ length: lost }, () => 0.1)),
            }),
          ],
        }),
      );
    await expectConnectError(interceptorClient(1).createPayment(cart()));
    await interceptorClient(0).createPayment(cart());
    await interceptorClient(0).createPayment(cart());
    const ids = recording.attempts.map((a) => a.requestId);
    expect(ids[1]).toBe(ids[0]);
    expect(ids[2]).not.toBe(ids[0]);
    expect(recording.server.runs).toHaveLength(2);
  });

  it("drop expired web storage entries when created, and leave other keys alone", async () => {
    const storage = mapStorage();
    storage.setItem("connect-idempotency:pending:old", JSON.stringify({ requestId: "a", expiresAtMs: 5 }));
    storage.setItem("connect-idempotency:pending:live", JSON.stringify({ requestId: "b", expiresAtMs: 50 }));
    storage.setItem("connect-idempotency:pending:junk", "not json");
    storage.setItem("theme", "dark");
    const pending = createWebStoragePendingRequestIds(storage, { clock: { now: () => 10 } });
    expect([...storage.items.keys()].sort()).toEqual(["connect-idempotency:pending:live", "theme"]);
    expect(await pending.get("live")).toBe("b");
  });

  it("start over from a damaged file instead of failing every call", async () => {
    const file = join(scratch.dir, "pending.json");
    writeFileSync(file, "{ half a file");
    const pending = createFilePendingRequestIds(file);
    expect(await pending.get("k")).toBeUndefined();
    await pending.set("k", "id-1", 60_000);
    expect(await createFilePendingRequestIds(file).get("k")).toBe("id-1");
  });

  it("survive a Node process killed mid-request: the restarted process pays once", async () => {
    const file = join(scratch.dir, "pending.json");
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let started: () => void = () => undefined;
    const handlerStarted = new Promise<void>((resolve) => {
      started = resolve;
    });
    // The first run waits until the test lets it finish, so that the first
    // process is killed while its request is in the handler.
    const server = await startIdempotencyTestServer({
      payments: {
        async createPayment(req, ctx) {
          const n = server.record("createPayment", req.requestId, ctx.values.get(idempotencyContext));
          if (n === 1) {
            started();
            await released;
          }
          return { payment: { paymentId: `pay_${n}` } };
        },
      },
    });
    scratch.closeAfter(() => server.close());
    const config = JSON.stringify({ baseUrl: server.baseUrl, file, amountMinor: "777" });
    const first = startPayer(config);
    await handlerStarted;
    first.child.kill("SIGKILL");
    await first.exited;
    release();
    const pendingFile = JSON.parse(readFileSync(file, "utf8")) as Record<string, { requestId: string }>;
    const firstId = Object.values(pendingFile)[0]?.requestId;
    expect(firstId).toBe(server.runs[0]?.requestId);
    const second = startPayer(config);
    expect(JSON.parse(await second.output())).toEqual({ requestId: firstId, replayed: true });
    expect(server.runs).toHaveLength(1);
    // The definite answer cleared the entry: a third purchase is a new one.
    const third = startPayer(config);
    const thirdOutcome = JSON.parse(await third.output()) as { requestId: string; replayed: boolean };
    expect(thirdOutcome.requestId).not.toBe(firstId);
    expect(thirdOutcome.replayed).toBe(false);
    expect(server.runs).toHaveLength(2);
  });
});

const payerMain = fileURLToPath(new URL("../support/pending-payment-main.ts", import.meta.url));

function startPayer(config: string) {
  const child = spawn(process.execPath, ["--import", "tsx", payerMain, config], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let stdout = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    exited,
    output: async () => {
      const code = await exited;
      if (code !== 0) {
        throw new Error(`the payer exited with ${code}: ${stdout}`);
      }
      return stdout;
    },
  };
}
