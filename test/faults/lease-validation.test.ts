// A lease that renewals cannot keep is refused when the interceptor is built,
// with a message that says why and what to do: below 1,000 ms, or below three
// times the longest time one store operation may block the process (the
// store's blockingWaitMs), a running claim would expire between two renewals
// and a second process would run the handler for the same ID.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, describe, expect, it } from "vitest";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { createIdempotencyInterceptor } from "../../src/index.js";
import type { IdempotencyStore } from "../../src/store/idempotency-store.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { answerOf } from "../support/fault-test-server.js";
import { usePerTestScratch } from "../support/per-test-scratch.js";
import { useTestSchema } from "../support/postgres-database.js";
import { type ServerProcess, startServerProcess } from "../support/server-process.js";

const scratch = usePerTestScratch("lease-validation-");
const postgres = useTestSchema("faults_lease");
const children: ServerProcess[] = [];
afterAll(async () => {
  await Promise.all(children.map((child) => child.kill("SIGKILL")));
});

/**
 * The message `createIdempotencyInterceptor` throws with these options, or
 * "accepted". The store is a SQLite file store; `blockingWaitMs`, when given,
 * stands for a store whose operations can block the process that long (as
 * better-sqlite3's synchronous busy wait did before lock waits became
 * asynchronous).
 */
function construction(lease: number | undefined, blockingWaitMs?: number): string {
  const sqlite = createSqliteStore({ path: join(scratch.dir, `construction-${++stores}.db`), sweepIntervalMs: 0 });
  const store: IdempotencyStore = blockingWaitMs === undefined ? sqlite : { ...sqlite, blockingWaitMs };
  try {
    createIdempotencyInterceptor({ store, ...(lease === undefined ? {} : { leaseMs: lease }), telemetry: false });
    return "accepted";
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    void sqlite.close();
  }
}

let stores = 0;

// 1000, 1,000, 1 000 or 1_000.
const number = (n: number) => new RegExp(String(n).replace(/(\d)(?=(\d{3})+$)/g, "$1[,_ ]?"));

describe("lease validation", () => {
  for (const lease of [1, 999]) {
    it(`refuses leaseMs: ${lease}, saying the lease is below the 1,000 ms minimum`, () => {
      const message = construction(lease, 100);
      expect(message).not.toBe("accepted");
      expect(message).toMatch(/lease/);
      expect(message).toMatch(number(lease));
      expect(message).toMatch(number(1000));
    });
  }

  it("refuses a lease below 3x the store's blocking wait (lease 10,000 with blockingWaitMs 5,000), naming both and the fix", () => {
    const message = construction(10_000, 5_000);
    expect(message).not.toBe("accepted");
    expect(message).toMatch(/lease/);
    expect(message).toMatch(number(10_000));
    // Why: the store may block the process that long.
    expect(message).toMatch(/blockingWaitMs/);
    expect(message).toMatch(number(5_000));
    // What to do: a lease of at least 15,000 ms.
    expect(message).toMatch(new RegExp(`${number(15_000).source}|3 ?x|three times`, "i"));
  });

  it("refuses the default 30 s lease on a store that can block for more than 10,000 ms", () => {
    expect(construction(undefined, 10_001)).toMatch(/lease/);
    expect(construction(undefined, 10_000)).toBe("accepted");
  });

  for (const lease of [Number.NaN, -1, -30_000, 0, Number.POSITIVE_INFINITY]) {
    it(`refuses leaseMs: ${lease}, naming the option and the value`, () => {
      const message = construction(lease, 100);
      expect(message).not.toBe("accepted");
      expect(message).toMatch(/lease/);
      expect(message).toContain(String(lease));
    });
  }

  it("accepts lease 1,000 with a blocking wait up to 333 ms, and the default lease with the default store", () => {
    expect({
      "1000/333": construction(1_000, 333),
      "1000/1": construction(1_000, 1),
      "1000/334": construction(1_000, 334) === "accepted" ? "accepted" : "refused",
      default: construction(undefined, undefined),
    }).toEqual({ "1000/333": "accepted", "1000/1": "accepted", "1000/334": "refused", default: "accepted" });
  });

  it("accepts lease 1,000 on a store that never blocks the process (no blockingWaitMs)", () => {
    const unused = () => Promise.reject(new Error("not called"));
    const store: IdempotencyStore = {
      claim: unused,
      complete: unused,
      interrupt: unused,
      release: unused,
      renew: unused,
      get: unused,
      sweep: unused,
      close: () => Promise.resolve(),
    } as IdempotencyStore;
    expect(() => createIdempotencyInterceptor({ store, leaseMs: 1_000, telemetry: false })).not.toThrow();
  });

  it("accepts lease 1,000 on a SQLite file store whatever its busyTimeoutMs: its lock waits do not block the process", async () => {
    const store = createSqliteStore({
      path: join(scratch.dir, "async-waits.db"),
      sweepIntervalMs: 0,
      busyTimeoutMs: 5_000,
    });
    try {
      expect(store.blockingWaitMs).toBeLessThanOrEqual(10);
      expect(() => createIdempotencyInterceptor({ store, leaseMs: 1_000, telemetry: false })).not.toThrow();
    } finally {
      await store.close();
    }
  });

  it("accepts lease 1,000 on an in-memory SQLite store whatever its busyTimeoutMs: no other process can hold its lock", async () => {
    const store = createSqliteStore({ path: ":memory:", sweepIntervalMs: 0, busyTimeoutMs: 5_000 });
    try {
      expect(() => createIdempotencyInterceptor({ store, leaseMs: 1_000, telemetry: false })).not.toThrow();
    } finally {
      await store.close();
    }
  });
});

describe("lease grace validation", () => {
  /** The message with this `leaseGrace`, or "accepted". */
  function withGrace(leaseGrace: number): string {
    const store = createSqliteStore({ path: ":memory:", sweepIntervalMs: 0 });
    try {
      createIdempotencyInterceptor({ store, leaseGraceMs: leaseGrace, telemetry: false });
      return "accepted";
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    } finally {
      void store.close();
    }
  }

  it("refuses a leaseGraceMs that is not a positive number, or too short for an owner's store retries", () => {
    for (const grace of [Number.NaN, -1, 0, 499]) {
      expect(withGrace(grace)).toMatch(/leaseGraceMs/);
    }
    expect(withGrace(500)).toBe("accepted");
    expect(withGrace(2_000)).toBe("accepted");
  });
});

describe("lease validation on PostgreSQL", () => {
  it("accepts lease 1,000 on the PostgreSQL store, whose operations never block the process", async () => {
    const store = await postgres.openStore();
    try {
      expect(store.blockingWaitMs ?? 0).toBe(0);
      expect(() => createIdempotencyInterceptor({ store, leaseMs: 1_000, telemetry: false })).not.toThrow();
    } finally {
      await store.close();
    }
  });
});

describe("lease validation across processes (the lease1 repro)", () => {
  /** Starts the fault server process, or returns why it exited before serving. */
  async function start(env: Record<string, string>): Promise<ServerProcess | string> {
    try {
      const child = await startServerProcess({ script: "test/support/fault-server-process.ts", env });
      children.push(child);
      return child;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }

  /** Calls both servers with one request ID, the second 50 ms later; returns the answers and executions. */
  async function sameIdOnBoth(a: ServerProcess, b: ServerProcess, executions: string) {
    const client = (s: ServerProcess) =>
      createClient(PaymentService, createConnectTransport({ baseUrl: s.baseUrl, httpVersion: "2" }));
    const req = { requestId: crypto.randomUUID(), amountMinor: 10n };
    const answers = await Promise.all([
      answerOf(client(a).createPayment(req)),
      new Promise((resolve) => setTimeout(resolve, 50)).then(() => answerOf(client(b).createPayment(req))),
    ]);
    const lines = existsSync(executions) ? readFileSync(executions, "utf8").trim().split("\n") : [];
    return { answers, executions: lines.length };
  }

  it("two processes configured with leaseMs: 1 never serve: each exits at startup with the lease message", async () => {
    const path = join(scratch.dir, "shared.db");
    const executions = join(scratch.dir, "executions.tsv");
    const env = { SQLITE_PATH: path, LEASE_MS: "1", HANDLER_MS: "500", EXECUTIONS_FILE: executions };
    const [a, b] = await Promise.all([start(env), start(env)]);
    // Where a process serves anyway, show what the misconfiguration does.
    const ran = typeof a === "string" || typeof b === "string" ? undefined : await sameIdOnBoth(a, b, executions);
    expect({
      a: typeof a === "string" ? /refused: .*lease/.test(a) : "serves",
      b: typeof b === "string" ? /refused: .*lease/.test(b) : "serves",
      ran,
    }).toEqual({ a: true, b: true, ran: undefined });
  });

  it("two processes with lease 1,000 and busyTimeoutMs 333 run the handler once for one request ID", async () => {
    const path = join(scratch.dir, "shared.db");
    const executions = join(scratch.dir, "executions.tsv");
    const env = {
      SQLITE_PATH: path,
      LEASE_MS: "1000",
      BUSY_TIMEOUT_MS: "333",
      HANDLER_MS: "500",
      EXECUTIONS_FILE: executions,
    };
    const [a, b] = await Promise.all([start(env), start(env)]);
    if (typeof a === "string" || typeof b === "string") {
      throw new Error(`a process did not serve: ${typeof a === "string" ? a : b}`);
    }
    const { answers, executions: count } = await sameIdOnBoth(a, b, executions);
    expect(count).toBe(1);
    expect(answers[0]).toMatch(/^ok pay_/);
    expect(answers[1]).toBe(answers[0]);
  });
});
