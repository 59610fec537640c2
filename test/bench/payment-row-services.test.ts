import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBenchService } from "../../bench/bench-services.js";
import { invokeInProcess } from "../../bench/invoke-in-process.js";
import { paymentRequest } from "../../bench/payment-request.js";
import { replayedHeader } from "../../src/server/protocol-headers.js";

// The write scenarios only compare what they claim to if the baseline
// really writes a row per call and the commit scenario writes one per
// request ID, in the interceptor's own database.
describe("the bench's services of a handler that writes", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "bench-rows-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const countRows = (path: string, requestId: string) => {
    const db = new Database(path, { readonly: true });
    try {
      return (db.prepare("SELECT count(*) AS n FROM payments WHERE request_id = ?").get(requestId) as { n: number }).n;
    } finally {
      db.close();
    }
  };

  it("baseline-db inserts the payment row on every call, duplicates included", async () => {
    const sqlitePath = join(dir, "baseline.db");
    const service = await createBenchService({
      setup: { kind: "plain-row", db: "sqlite-full" },
      store: { kind: "sqlite-full", sqlitePath },
    });
    const requestId = crypto.randomUUID();
    try {
      await invokeInProcess(service, paymentRequest(requestId));
      await expect(invokeInProcess(service, paymentRequest(requestId))).rejects.toThrow(/UNIQUE constraint failed/);
    } finally {
      await service.close();
    }
    expect(countRows(sqlitePath, requestId)).toBe(1);
  });

  it("sqlite-commit commits the row with the completion once, and replays the duplicate", async () => {
    const sqlitePath = join(dir, "commit.db");
    const service = await createBenchService({
      setup: { kind: "interceptor", store: "sqlite-normal", prefillRows: 0, handler: "commit" },
      store: { kind: "sqlite-normal", sqlitePath },
    });
    const requestId = crypto.randomUUID();
    try {
      const first = await invokeInProcess(service, paymentRequest(requestId));
      const second = await invokeInProcess(service, paymentRequest(requestId));
      expect(second.message).toEqual(first.message);
      expect(first.header.get(replayedHeader)).toBeNull();
      expect(second.header.get(replayedHeader)).toBe("true");
    } finally {
      await service.close();
    }
    expect(countRows(sqlitePath, requestId)).toBe(1);
  });

  it("the replay scenarios' interceptor replays a duplicate with the replay cache on", async () => {
    const service = await createBenchService({
      setup: { kind: "interceptor", store: "sqlite-normal", prefillRows: 0, replayCache: true },
      store: { kind: "sqlite-normal", sqlitePath: join(dir, "replay.db") },
    });
    try {
      const requestId = crypto.randomUUID();
      const first = await invokeInProcess(service, paymentRequest(requestId));
      const second = await invokeInProcess(service, paymentRequest(requestId));
      expect(second.message).toEqual(first.message);
      expect(second.header.get(replayedHeader)).toBe("true");
    } finally {
      await service.close();
    }
  });
});
