import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { isMessage } from "@bufbuild/protobuf";
import Database from "better-sqlite3";
import { Code, ConnectError, type Interceptor, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBankServiceImpl } from "../../demo/bank-service.js";
import { BankService, ChargeRequestSchema } from "../../gen/demo/v1/bank_pb.js";
import { type CreatePaymentResponse, PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { createIdempotencyInterceptor } from "../../src/index.js";
import { findRetryDelayMs } from "../../src/client/index.js";
import { deriveRequestId } from "../../src/server/derived-key.js";
import { createSqliteStore, type SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { type TestHttp2Server, startHttp2Server } from "../support/http2-server.js";
import { type ServerProcess, startServerProcess } from "../support/server-process.js";
import type { CrashBoundary } from "./support/crash-payment-server.js";

const script = fileURLToPath(new URL("./support/crash-payment-server.ts", import.meta.url));
const method = "demo.v1.PaymentService/CreatePayment";
// The shortest lease the interceptor accepts; a takeover also waits out the 2 s grace.
const leaseMs = 1_000;
const runsPerBoundary = 3;

let dir: string;
let bankStore: SqliteStore;
let bank: TestHttp2Server;
/** The request ID of every Charge call that reached the bank, replays included. */
const bankCalls: string[] = [];
/** A crash-free payment server with its own database, sharing the bank. */
let reference: ServerProcess;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "connect-idempotency-crash-"));
  bankStore = createSqliteStore({ path: join(dir, "bank.db"), sweepIntervalMs: 0 });
  const countCalls: Interceptor = (next) => async (req) => {
    if (!req.stream && isMessage(req.message, ChargeRequestSchema)) {
      bankCalls.push(req.message.requestId);
    }
    return next(req);
  };
  bank = await startHttp2Server({
    interceptors: [countCalls, createIdempotencyInterceptor({ store: bankStore })],
    routes: (router) => router.service(BankService, createBankServiceImpl(bankStore)),
  });
  reference = await startPaymentServer("reference.db", { HANDLER: "atomic" });
});

afterAll(async () => {
  await reference?.kill();
  await bank?.close();
  await bankStore?.close();
  await rm(dir, { recursive: true, force: true });
});

function startPaymentServer(file: string, env: Record<string, string>): Promise<ServerProcess> {
  return startServerProcess({
    script,
    env: { SQLITE_PATH: join(dir, file), BANK_URL: bank.baseUrl, LEASE_MS: String(leaseMs), ...env },
  });
}

function createPayment(server: ServerProcess, requestId: string): Promise<CreatePaymentResponse> {
  const client = createClient(PaymentService, createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "2" }));
  return client.createPayment({
    requestId,
    accountId: "acct-1",
    amountMinor: 1250n,
    currency: "EUR",
    metadata: { order: "o-7" },
  });
}

/**
 * Retries like a client that keeps its request ID: ABORTED (the crashed
 * execution still holds its lease) is retried after the server's RetryInfo.
 */
async function createPaymentUntilAnswered(server: ServerProcess, requestId: string): Promise<CreatePaymentResponse> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await createPayment(server, requestId);
    } catch (error) {
      const err = ConnectError.from(error);
      if (err.code !== Code.Aborted || attempt >= 20) {
        throw err;
      }
      await sleep(Math.min(findRetryDelayMs(err) ?? 100, leaseMs));
    }
  }
}

function countPaymentRows(file: string, requestId: string): number {
  const db = new Database(join(dir, file), { readonly: true });
  try {
    return (db.prepare("SELECT count(*) AS n FROM payments WHERE request_id = ?").get(requestId) as { n: number }).n;
  } finally {
    db.close();
  }
}

function chargesAtBank(requestId: string): { charge_id: string }[] {
  return bankStore.database
    .prepare("SELECT charge_id FROM charges WHERE request_id = ?")
    .all(deriveRequestId({ scope: "", method, key: requestId, name: "charge" })) as { charge_id: string }[];
}

interface CrashRun {
  readonly requestId: string;
  readonly file: string;
  /** What the client finally holds. */
  readonly response: CreatePaymentResponse;
  /** Charge calls that reached the bank for this payment, before the reference run. */
  readonly bankCalls: number;
}

/**
 * Sends one payment to a server that dies at `boundary`, checks that it died
 * by SIGKILL, restarts it on the same database and retries with the same
 * request ID until answered.
 */
async function crashAndRecover(handler: "atomic" | "plain", boundary: CrashBoundary): Promise<CrashRun> {
  const requestId = randomUUID();
  const file = `payments-${requestId}.db`;
  const crashing = await startPaymentServer(file, { HANDLER: handler, CRASH_AT: boundary });
  await expect(createPayment(crashing, requestId)).rejects.toThrow();
  expect(await crashing.exited).toBeNull();
  const restarted = await startPaymentServer(file, { HANDLER: handler });
  try {
    const response = await createPaymentUntilAnswered(restarted, requestId);
    const derived = deriveRequestId({ scope: "", method, key: requestId, name: "charge" });
    return { requestId, file, response, bankCalls: bankCalls.filter((id) => id === derived).length };
  } finally {
    await restarted.kill();
  }
}

describe("CreatePayment with phase and commit survives SIGKILL at every boundary", () => {
  const boundaries: readonly { boundary: CrashBoundary; bankCalls: number }[] = [
    // The charge was not recorded: the retry asks the bank again, under the
    // same derived key, and the bank replays its charge.
    { boundary: "after-charge", bankCalls: 2 },
    // The charge phase was recorded: the retry does not call the bank at all.
    { boundary: "after-write", bankCalls: 1 },
    { boundary: "after-complete", bankCalls: 1 },
  ];
  for (const { boundary, bankCalls: expectedBankCalls } of boundaries) {
    it(`crash ${boundary}: one payment, one charge, the crash-free response`, { timeout: 120_000 }, async () => {
      for (let run = 0; run < runsPerBoundary; run++) {
        const crashed = await crashAndRecover("atomic", boundary);
        expect(countPaymentRows(crashed.file, crashed.requestId)).toBe(1);
        const charges = chargesAtBank(crashed.requestId);
        expect(charges).toHaveLength(1);
        expect(crashed.bankCalls).toBe(expectedBankCalls);
        // A crash-free run of the same request: same payment ID (derived from
        // the request ID) and same charge (the bank deduplicates the derived key).
        const crashFree = await createPayment(reference, crashed.requestId);
        expect(crashed.response).toEqual(crashFree);
        expect(crashed.response.payment?.chargeId).toBe(charges[0]!.charge_id);
        expect(crashed.response.payment?.amountMinor).toBe(1250n);
        expect(chargesAtBank(crashed.requestId)).toHaveLength(1);
      }
    });
  }
});

describe("a plain handler, without commit, has the weaker guarantee", () => {
  it("writes a second row when the crash falls between its write and the completion", { timeout: 60_000 }, async () => {
    const crashed = await crashAndRecover("plain", "after-write");
    // The first execution's row is committed, its completion never was: the
    // retry takes the key over and runs the handler again.
    expect(countPaymentRows(crashed.file, crashed.requestId)).toBe(2);
  });

  it("is exactly-once when the crash comes after the completion", { timeout: 60_000 }, async () => {
    const crashed = await crashAndRecover("plain", "after-complete");
    expect(countPaymentRows(crashed.file, crashed.requestId)).toBe(1);
  });
});
