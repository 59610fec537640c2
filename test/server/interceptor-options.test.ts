import { afterAll, describe, expect, it } from "vitest";
import { createSqliteStore } from "../../src/index.js";
import {
  defaultAcceptCompression,
  defaultLeaseGraceMs,
  defaultLeaseMs,
  defaultMaxPendingBytes,
  defaultMaxPendingCompletions,
  defaultMaxStoredBytes,
  defaultMaxWaitMs,
  defaultRetentionMs,
  defaultTombstoneRetentionMs,
  resolveInterceptorOptions,
} from "../../src/server/interceptor-options.js";

const store = createSqliteStore({ path: ":memory:", sweepIntervalMs: 0 });
afterAll(() => store.close());

describe("the interceptor's options", () => {
  it("default to the named constants", () => {
    const settings = resolveInterceptorOptions({ store, telemetry: false });
    expect(settings).toMatchObject({
      retentionMs: defaultRetentionMs,
      tombstoneRetentionMs: defaultTombstoneRetentionMs,
      leaseMs: defaultLeaseMs,
      leaseGraceMs: defaultLeaseGraceMs,
      maxWaitMs: defaultMaxWaitMs,
      maxStoredBytes: defaultMaxStoredBytes,
      maxPendingCompletions: defaultMaxPendingCompletions,
      maxPendingBytes: defaultMaxPendingBytes,
      compressions: defaultAcceptCompression,
    });
    expect([
      defaultRetentionMs,
      defaultTombstoneRetentionMs,
      defaultLeaseMs,
      defaultLeaseGraceMs,
      defaultMaxWaitMs,
    ]).toEqual([24 * 3_600_000, 30 * 24 * 3_600_000, 30_000, 2_000, 5_000]);
  });

  it("take every time in milliseconds under a name that says so", () => {
    const settings = resolveInterceptorOptions({
      store,
      telemetry: false,
      retentionMs: 60_000,
      tombstoneRetentionMs: 0,
      leaseMs: 10_000,
      leaseGraceMs: 1_000,
      maxWaitMs: 0,
      acceptCompression: [{ name: "br" }],
    });
    expect(settings).toMatchObject({
      retentionMs: 60_000,
      tombstoneRetentionMs: 0,
      leaseMs: 10_000,
      leaseGraceMs: 1_000,
      maxWaitMs: 0,
      compressions: ["br"],
    });
  });
});
