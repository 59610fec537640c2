// A bounded, seeded fuzz run against one server process (PaymentService and
// FixtureService/Opaque behind the idempotency interceptor, soak-server-main.ts):
// a few thousand requests across Connect (binary, JSON), gRPC and gRPC-Web,
// with and without compression. Every request must answer within a bound
// with exactly the code (and ErrorInfo reason) its input class calls for
// (fuzz-cases.ts), the process must not crash, and only valid requests may
// run a handler, each valid request ID once.
//
// FUZZ_SEED=<n> replays another sequence; the seed is printed either way.
import { mkdtempSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  compressionGzip,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { FixtureService } from "../../gen/fixture/v1/fixture_pb.js";
import { type SoakServer, startSoakServer } from "../../bench/soak-server.js";
import { findErrorReason } from "../../src/errors/idempotency-error.js";
import { createSeededRandom } from "../../src/testing/seeded-random.js";
import { type TransportVariant, transportVariants } from "../support/test-transports.js";
import {
  type ClientCase,
  drawClientCases,
  drawFollowUps,
  drawRawCases,
  type Expected,
  type FuzzCase,
  type FuzzMethod,
  methodSpecs,
} from "./fuzz-cases.js";
import { createSessionPool, rawOutcome, sendRaw } from "./raw-http2.js";

const seed = Number(process.env.FUZZ_SEED ?? 1414);
/** Small, so that oversized inputs stay cheap to build and send. */
const readMaxBytes = 64 * 1024;
const clientCount = 1_300;
const followUpCount = 300;
const rawCount = 1_600;
/** Requests in flight at once. */
const concurrency = 8;
/** A hang guard per request, not a speed target: they answer in milliseconds. */
const answerWithinMs = 10_000;

/** What one request got. */
interface Observed {
  readonly kind: "ok" | "error" | "reset";
  /** The Connect code, or for a reset the HTTP/2 error code. */
  readonly code?: Code;
  readonly reason?: string | undefined;
  readonly message?: string;
  /** The response as JSON, for comparing a replay with its original. */
  readonly response?: string;
}

interface Clients {
  readonly payments: Client<typeof PaymentService>;
  readonly fixture: Client<typeof FixtureService>;
}

function createVariantTransport(
  baseUrl: string,
  variant: TransportVariant,
  sessionManager: Http2SessionManager,
): Transport {
  const options = {
    baseUrl,
    httpVersion: "2" as const,
    sessionManager,
    useBinaryFormat: variant.binary,
    sendCompression: variant.gzip ? compressionGzip : undefined,
    acceptCompression: variant.gzip ? [compressionGzip] : [],
    compressMinBytes: 1,
  };
  switch (variant.protocol) {
    case "connect":
      return createConnectTransport(options);
    case "grpc":
      return createGrpcTransport(options);
    case "grpc-web":
      return createGrpcWebTransport(options);
  }
}

async function callClient(clients: Clients, c: ClientCase): Promise<Observed> {
  const options = { timeoutMs: answerWithinMs };
  try {
    const response =
      c.method === "opaque"
        ? await clients.fixture.opaque(c.message as never, options)
        : await clients.payments[c.method](c.message as never, options);
    return {
      kind: "ok",
      response: JSON.stringify(response, (_, v: unknown) => (typeof v === "bigint" ? String(v) : v)),
    };
  } catch (error) {
    const e = ConnectError.from(error);
    return { kind: "error", code: e.code, reason: findErrorReason(e), message: e.rawMessage };
  }
}

function matches(expected: Expected, observed: Observed): boolean {
  if (expected.kind === "ok") {
    return observed.kind === "ok";
  }
  if (expected.kind === "reset") {
    return observed.kind === "reset" && observed.code === expected.http2Code;
  }
  return (
    observed.kind === "error" &&
    observed.code === expected.code &&
    observed.reason === expected.reason &&
    expected.message.test(observed.message ?? "")
  );
}

const describeExpected = (e: Expected) =>
  e.kind === "ok"
    ? "OK"
    : e.kind === "reset"
      ? `RST_STREAM ${e.http2Code}`
      : `${Code[e.code]}${e.reason === undefined ? "" : ` ${e.reason}`} ${String(e.message)}`;
const describeObserved = (o: Observed) =>
  o.kind === "ok"
    ? "OK"
    : o.kind === "reset"
      ? `RST_STREAM ${o.code}`
      : `${Code[o.code ?? Code.Unknown]}${o.reason === undefined ? "" : ` ${o.reason}`} "${o.message}"`;

async function runPool<T>(
  items: readonly T[],
  limit: number,
  run: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const index = next++;
        await run(items[index]!, index);
      }
    }),
  );
}

describe(`fuzzing the interceptor's server (seed ${seed})`, () => {
  const dir = mkdtempSync(join(tmpdir(), "fuzz-"));
  const managers: Http2SessionManager[] = [];
  let server: SoakServer;
  let raw: ReturnType<typeof createSessionPool>;
  const clientsByVariant = new Map<string, Clients>();

  beforeAll(async () => {
    server = await startSoakServer({
      sqlitePath: join(dir, "records.sqlite"),
      executionsFile: join(dir, "executions.tsv"),
      readMaxBytes,
    });
    raw = createSessionPool(server.baseUrl);
    for (const variant of transportVariants) {
      const manager = new Http2SessionManager(server.baseUrl);
      managers.push(manager);
      const transport = createVariantTransport(server.baseUrl, variant, manager);
      clientsByVariant.set(variant.name, {
        payments: createClient(PaymentService, transport),
        fixture: createClient(FixtureService, transport),
      });
    }
  });

  afterAll(async () => {
    for (const manager of managers) {
      manager.abort();
    }
    await raw?.closeAll();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers every input within the bound with its class's code, runs only valid requests, each ID once", async () => {
    const draw = createSeededRandom(seed);
    const firstPhase = drawClientCases(draw, transportVariants, clientCount);
    const rawCases = await drawRawCases(draw, rawCount, { readMaxBytes });
    const followUps = drawFollowUps(draw, transportVariants, firstPhase, followUpCount);

    const observed = new Map<FuzzCase, Observed>();
    const send = async (c: FuzzCase) => {
      if (c.kind === "client") {
        observed.set(c, await callClient(clientsByVariant.get(c.variant.name)!, c));
        return;
      }
      try {
        const response = await sendRaw(raw.session(), { headers: c.headers, body: c.body }, answerWithinMs);
        if (response.resetCode !== undefined) {
          observed.set(c, {
            kind: "reset",
            code: response.resetCode as Code,
            message: `RST_STREAM ${response.resetCode}`,
          });
          return;
        }
        const error = rawOutcome(c.protocol, response);
        observed.set(
          c,
          error === undefined
            ? { kind: "ok" }
            : { kind: "error", code: error.code, reason: findErrorReason(error), message: error.rawMessage },
        );
      } catch (error) {
        // No answer in time, a reset stream, or no status: none is an answer.
        observed.set(c, { kind: "error", code: -1 as Code, message: String(error) });
      }
    };
    // Well-formed and raw requests interleaved; follow-ups after their originals answered.
    const interleaved: FuzzCase[] = [];
    for (let i = 0; i < Math.max(firstPhase.length, rawCases.length); i++) {
      if (i < firstPhase.length) interleaved.push(firstPhase[i]!);
      if (i < rawCases.length) interleaved.push(rawCases[i]!);
    }
    const started = performance.now();
    await runPool(interleaved, concurrency, send);
    await runPool(followUps, concurrency, send);
    const elapsedS = (performance.now() - started) / 1000;

    // Tally by input class, and collect every mismatch.
    const all: FuzzCase[] = [...interleaved, ...followUps];
    const tally = new Map<string, Map<string, number>>();
    const failures: string[] = [];
    for (const c of all) {
      const o = observed.get(c)!;
      const byCode = tally.get(c.inputClass) ?? new Map<string, number>();
      tally.set(c.inputClass, byCode);
      const seen =
        o.kind === "ok"
          ? "OK"
          : o.kind === "reset"
            ? `RST_STREAM ${o.code === http2.constants.NGHTTP2_PROTOCOL_ERROR ? "PROTOCOL_ERROR" : o.code}`
            : `${Code[o.code ?? Code.Unknown] ?? "NO ANSWER"}${o.reason === undefined ? "" : ` ${o.reason}`}`;
      byCode.set(seen, (byCode.get(seen) ?? 0) + 1);
      if (!matches(c.expected, o)) {
        const what =
          c.kind === "client"
            ? `${c.variant.name} ${c.method} ${JSON.stringify(c.message, (_, v: unknown) => (typeof v === "bigint" ? String(v) : v))}`
            : `${c.method} ${c.body.subarray(0, 80).toString("hex")} (${c.body.byteLength} bytes) ${JSON.stringify(c.headers)}`;
        failures.push(
          `${c.inputClass}: expected ${describeExpected(c.expected)}, got ${describeObserved(o)} — ${what}`,
        );
      }
      if (c.kind === "client" && c.replayOf !== undefined && o.kind === "ok") {
        const original = observed.get(firstPhase[c.replayOf]!)!;
        if (original.response !== o.response) {
          failures.push(`replay of case ${c.replayOf} answered ${o.response}, the original ${original.response}`);
        }
      }
    }
    console.log(
      `seed ${seed}: ${all.length} requests in ${elapsedS.toFixed(1)} s\n` +
        [...tally.entries()]
          .sort(([a], [b]) => a.localeCompare(b))
          .map(
            ([inputClass, byCode]) =>
              `  ${inputClass}: ${[...byCode.entries()].map(([code, n]) => `${code} x${n}`).join(", ")}`,
          )
          .join("\n"),
    );
    const failedClasses = new Map<string, number>();
    for (const failure of failures) {
      const inputClass = failure.slice(0, failure.indexOf(":"));
      failedClasses.set(inputClass, (failedClasses.get(inputClass) ?? 0) + 1);
    }
    if (failures.length > 0) {
      console.log(`wrong answers by class: ${JSON.stringify(Object.fromEntries(failedClasses))}`);
    }
    expect(failures.slice(0, 20), `${failures.length} of ${all.length} requests got the wrong answer`).toEqual([]);

    // The process is still there and serves.
    const measured = await server.measure();
    const check = await clientsByVariant.get(transportVariants[0]!.name)!.payments.getPayment({ paymentId: "p" });
    expect(check.payment?.paymentId).toBe("p");

    // Only valid requests ran a handler: each valid request ID once, unkeyed ones as often as they were sent.
    const wantRuns = new Map<string, number>();
    const wantUnkeyed = new Map<FuzzMethod, number>();
    for (const c of all) {
      if (c.expected.kind !== "ok" || c.expected.runs === "replay") continue;
      if (c.expected.runs === "unkeyed") {
        wantUnkeyed.set(c.method, (wantUnkeyed.get(c.method) ?? 0) + 1);
      } else {
        wantRuns.set(`${c.expected.runs.method} ${c.expected.runs.key}`, 1);
      }
    }
    const gotRuns = new Map<string, number>();
    const gotUnkeyed = new Map<FuzzMethod, number>();
    for (const run of server.executions()) {
      const method = run.method as FuzzMethod;
      if (run.requestId === "") {
        gotUnkeyed.set(method, (gotUnkeyed.get(method) ?? 0) + 1);
        continue;
      }
      const key = methodSpecs[method].format === "uuid" ? run.requestId.toLowerCase() : run.requestId;
      gotRuns.set(`${method} ${key}`, (gotRuns.get(`${method} ${key}`) ?? 0) + 1);
    }
    expect(measured.executions).toBe(server.executions().length);
    expect(Object.fromEntries(gotUnkeyed)).toEqual(Object.fromEntries(wantUnkeyed));
    const unexpected = [...gotRuns.entries()].filter(([key, n]) => wantRuns.get(key) !== n);
    const missing = [...wantRuns.keys()].filter((key) => !gotRuns.has(key));
    expect({ unexpected: unexpected.slice(0, 20), missing: missing.slice(0, 20) }).toEqual({
      unexpected: [],
      missing: [],
    });

    // And only valid request IDs left a record.
    const db = new Database(join(dir, "records.sqlite"), { readonly: true });
    try {
      const records = db.prepare("SELECT count(*) AS n FROM connect_idempotency_records").get() as { n: number };
      expect(records.n).toBe(wantRuns.size);
    } finally {
      db.close();
    }
  });
});
