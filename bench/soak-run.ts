import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  compressionGzip,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import {
  type CreatePaymentRequestSchema,
  type CreatePaymentResponse,
  PaymentService,
} from "../gen/demo/v1/payments_pb.js";
import { ErrorReason } from "../src/errors/error-reason.js";
import { findErrorReason } from "../src/errors/idempotency-error.js";
import { createSeededRandom } from "../src/testing/seeded-random.js";
import { type SoakMeasurement, startSoakServer } from "./soak-server.js";

/** The kinds of call a soak run mixes, with their shares of the calls. */
export const soakMix = {
  /** A new request ID: the handler runs. */
  first: 0.4,
  /** A completed request ID with the same payload: the stored answer, no run. */
  replay: 0.2,
  /** A completed request ID with another payload: FAILED_PRECONDITION, REQUEST_ID_REUSED. */
  mismatch: 0.1,
  /** A new request ID sent twice at once while the handler takes 20 ms: one run, one answer for both. */
  inFlight: 0.1,
  /** A new request ID whose handler fails with FAILED_PRECONDITION: stored, and the same error on a retry. */
  handlerError: 0.1,
  /** A retry of a request whose handler failed: the stored error, no run. */
  errorReplay: 0.05,
  /** A request ID that is not a UUID: INVALID_ARGUMENT, REQUEST_ID_INVALID, no run. */
  invalidKey: 0.05,
} as const;

export type SoakKind = keyof typeof soakMix;

/** Options of `runSoak`. */
export interface SoakOptions {
  /** Calls to make in all (an in-flight pair counts as two). */
  readonly calls: number;
  /** Calls in flight at once. */
  readonly concurrency: number;
  readonly seed: number;
  /** The folder of the server's SQLite file and executions file. */
  readonly dataDir: string;
  /** Calls before the start measurement, so that it is taken from a warm process. */
  readonly warmupCalls: number;
  /** Receives progress lines. */
  readonly log?: (line: string) => void;
}

/** What a soak run measured. */
export interface SoakReport {
  readonly calls: number;
  readonly elapsedMs: number;
  /** Calls per kind. */
  readonly sent: Readonly<Record<SoakKind, number>>;
  /** The first few calls whose answer was not the one their kind calls for, and how many there were. */
  readonly wrongAnswers: { readonly count: number; readonly first: readonly string[] };
  /** Request IDs whose handler ran other than once (expected: none). */
  readonly runsOtherThanOnce: number;
  /** Handler runs in all, and how many the mix calls for. */
  readonly executions: { readonly got: number; readonly expected: number };
  /** The server right after it started, before any call. */
  readonly cold: SoakMeasurement;
  /** After the warm-up calls, after gc. */
  readonly start: SoakMeasurement;
  /** After the last call, after gc. */
  readonly end: SoakMeasurement;
}

type PaymentInit = MessageInitShape<typeof CreatePaymentRequestSchema>;

/** A completed call a later call can replay or contradict; a bounded ring of them is kept. */
interface Completed {
  readonly request: PaymentInit;
  readonly answer: string;
}

const ringSize = 1_000;

/**
 * Runs a soak: `calls` calls of the `soakMix` against one soak server
 * process over Connect, gRPC and gRPC-Web (gzip), checking every answer, and
 * measures the server's heap and active handles after gc at the start
 * (after the warm-up) and at the end.
 */
export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  mkdirSync(options.dataDir, { recursive: true });
  const executionsFile = join(options.dataDir, "executions.tsv");
  const server = await startSoakServer({
    sqlitePath: join(options.dataDir, "records.sqlite"),
    executionsFile,
    readMaxBytes: 4 * 1024 * 1024,
  });
  const managers: Http2SessionManager[] = [];
  try {
    const cold = await server.measure();
    const clients = (["connect", "grpc", "grpc-web"] as const).map((protocol) => {
      const sessionManager = new Http2SessionManager(server.baseUrl);
      managers.push(sessionManager);
      return createClient(PaymentService, createSoakTransport(protocol, server.baseUrl, sessionManager));
    });
    const draw = createSeededRandom(options.seed);
    const sent = Object.fromEntries(Object.keys(soakMix).map((kind) => [kind, 0])) as Record<SoakKind, number>;
    const wrong: string[] = [];
    let wrongCount = 0;
    let expectedExecutions = 0;
    const completed: Completed[] = [];
    const failed: Completed[] = [];
    let issued = 0;
    let clientTurn = 0;
    const nextClient = () => clients[clientTurn++ % clients.length]!;
    const remember = (ring: Completed[], entry: Completed) => {
      if (ring.length < ringSize) ring.push(entry);
      else ring[Math.floor(draw() * ringSize)] = entry;
    };
    const check = (kind: SoakKind, ok: boolean, detail: () => string) => {
      if (!ok) {
        wrongCount += 1;
        if (wrong.length < 10) wrong.push(`${kind}: ${detail()}`);
      }
    };

    const oneCall = async (): Promise<void> => {
      let kind = pickKind(draw());
      if ((kind === "replay" || kind === "mismatch") && completed.length === 0) kind = "first";
      if (kind === "errorReplay" && failed.length === 0) kind = "handlerError";
      if (kind === "inFlight" && issued + 2 > options.calls) kind = "first";
      sent[kind] += 1;
      issued += kind === "inFlight" ? 2 : 1;
      switch (kind) {
        case "first": {
          const request = newPayment(draw);
          expectedExecutions += 1;
          const got = await settle(nextClient().createPayment(request));
          check(kind, got.ok, () => got.text);
          if (got.ok) remember(completed, { request, answer: got.text });
          return;
        }
        case "replay": {
          const original = completed[Math.floor(draw() * completed.length)]!;
          const got = await settle(nextClient().createPayment(original.request));
          check(kind, got.ok && got.text === original.answer, () => `${got.text} instead of ${original.answer}`);
          return;
        }
        case "mismatch": {
          const original = completed[Math.floor(draw() * completed.length)]!;
          const got = await settle(
            nextClient().createPayment({ ...original.request, amountMinor: (original.request.amountMinor ?? 0n) + 1n }),
          );
          check(
            kind,
            !got.ok && got.code === Code.FailedPrecondition && got.reason === ErrorReason.REQUEST_ID_REUSED,
            () => got.text,
          );
          return;
        }
        case "inFlight": {
          const request = newPayment(draw, { delay_ms: "20" });
          expectedExecutions += 1;
          const [a, b] = await Promise.all([
            settle(nextClient().createPayment(request)),
            settle(nextClient().createPayment(request)),
          ]);
          check(kind, a.ok && b.ok && a.text === b.text, () => `${a.text} / ${b.text}`);
          if (a.ok) remember(completed, { request, answer: a.text });
          return;
        }
        case "handlerError": {
          const request = newPayment(draw, { fail: "failed_precondition" });
          expectedExecutions += 1;
          const got = await settle(nextClient().createPayment(request));
          check(kind, !got.ok && got.code === Code.FailedPrecondition && got.reason === undefined, () => got.text);
          remember(failed, { request, answer: got.text });
          return;
        }
        case "errorReplay": {
          const original = failed[Math.floor(draw() * failed.length)]!;
          const got = await settle(nextClient().createPayment(original.request));
          check(kind, !got.ok && got.text === original.answer, () => `${got.text} instead of ${original.answer}`);
          return;
        }
        case "invalidKey": {
          const request = { ...newPayment(draw), requestId: `not-a-uuid-${Math.floor(draw() * 1e9)}` };
          const got = await settle(nextClient().createPayment(request));
          check(
            kind,
            !got.ok && got.code === Code.InvalidArgument && got.reason === ErrorReason.REQUEST_ID_INVALID,
            () => got.text,
          );
          return;
        }
      }
    };

    const runCalls = async (until: number) => {
      await Promise.all(
        Array.from({ length: options.concurrency }, async () => {
          while (issued < until) {
            await oneCall();
          }
        }),
      );
    };

    const started = performance.now();
    await runCalls(Math.min(options.warmupCalls, options.calls));
    const start = await server.measure();
    options.log?.(`warm-up: ${issued} calls; heap ${mb(start.heapUsedBytes)} after gc`);
    let nextLog = issued + 10_000;
    while (issued < options.calls) {
      await runCalls(Math.min(options.calls, nextLog));
      if (issued >= nextLog) {
        options.log?.(
          `${issued} calls, ${Math.round((issued * 1000) / (performance.now() - started))}/s, ${wrongCount} wrong`,
        );
        nextLog += 10_000;
      }
    }
    const elapsedMs = performance.now() - started;
    const end = await server.measure();

    const runsPerKey = new Map<string, number>();
    for (const run of server.executions()) {
      runsPerKey.set(run.requestId, (runsPerKey.get(run.requestId) ?? 0) + 1);
    }
    let runsOtherThanOnce = 0;
    for (const runs of runsPerKey.values()) {
      if (runs !== 1) runsOtherThanOnce += 1;
    }
    return {
      calls: issued,
      elapsedMs,
      sent,
      wrongAnswers: { count: wrongCount, first: wrong },
      runsOtherThanOnce,
      executions: { got: end.executions, expected: expectedExecutions },
      cold,
      start,
      end,
    };
  } finally {
    for (const manager of managers) {
      manager.abort();
    }
    await server.stop();
  }
}

function pickKind(roll: number): SoakKind {
  let left = roll;
  for (const [kind, share] of Object.entries(soakMix) as [SoakKind, number][]) {
    left -= share;
    if (left < 0) return kind;
  }
  return "first";
}

function newPayment(draw: () => number, metadata: Record<string, string> = {}): PaymentInit {
  return {
    requestId: uuidFrom(draw),
    accountId: `acct-${Math.floor(draw() * 1000)}`,
    amountMinor: BigInt(1 + Math.floor(draw() * 100_000)),
    currency: "EUR",
    metadata,
  };
}

function uuidFrom(draw: () => number): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(draw() * 16).toString(16));
  hex[12] = "4";
  hex[16] = "8";
  const h = hex.join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

type Settled =
  | { readonly ok: true; readonly text: string }
  | { readonly ok: false; readonly code: Code; readonly reason: string | undefined; readonly text: string };

async function settle(call: Promise<CreatePaymentResponse>): Promise<Settled> {
  try {
    const response = await call;
    return { ok: true, text: `${response.payment?.paymentId} ${response.payment?.amountMinor}` };
  } catch (error) {
    const e = ConnectError.from(error);
    return {
      ok: false,
      code: e.code,
      reason: findErrorReason(e),
      text: `${Code[e.code]} ${findErrorReason(e) ?? ""} ${e.rawMessage}`,
    };
  }
}

function createSoakTransport(
  protocol: "connect" | "grpc" | "grpc-web",
  baseUrl: string,
  sessionManager: Http2SessionManager,
): Transport {
  // A deadline on every call: a hung call fails the run instead of stalling it.
  const options = { baseUrl, httpVersion: "2" as const, sessionManager, defaultTimeoutMs: 30_000 };
  switch (protocol) {
    case "connect":
      return createConnectTransport(options);
    case "grpc":
      return createGrpcTransport(options);
    case "grpc-web":
      return createGrpcWebTransport({ ...options, sendCompression: compressionGzip, compressMinBytes: 1 });
  }
}

/** Bytes as MB with one decimal. */
export function mb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MB`;
}

/** The active resources as `type xN` pairs, sorted. */
export function describeResources(resources: Readonly<Record<string, number>>): string {
  return Object.entries(resources)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([type, n]) => `${type} x${n}`)
    .join(", ");
}
