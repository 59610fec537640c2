import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  createMemoryPendingRequestIds,
  createWebStoragePendingRequestIds,
  resolveRetryPolicy,
  type WebStorageLike,
} from "../../src/client/index.js";
import { createFilePendingRequestIds } from "../../src/client/node/index.js";
import { createSqliteStore, openSqliteStoreAdmin } from "../../src/index.js";
import { type Clock, resolveClock } from "../../src/time/clock.js";

const dir = await mkdtemp(join(tmpdir(), "clock-"));
afterAll(() => rm(dir, { recursive: true, force: true }));

const noStorage: WebStorageLike = {
  getItem: () => null,
  setItem: () => undefined,
  removeItem: () => undefined,
  length: 0,
  key: () => null,
};

// Every place a user passes a time source, as a call that takes `options`.
const takers: Record<string, (options: object) => unknown> = {
  createSqliteStore: (options) => createSqliteStore({ path: ":memory:", sweepIntervalMs: 0, ...options }).close(),
  openSqliteStoreAdmin: (options) => openSqliteStoreAdmin({ path: join(dir, "missing.db"), ...options }),
  "connect-idempotency retry options": (options) => resolveRetryPolicy(options),
  createMemoryPendingRequestIds: (options) => createMemoryPendingRequestIds(options),
  createWebStoragePendingRequestIds: (options) => createWebStoragePendingRequestIds(noStorage, options),
  createFilePendingRequestIds: (options) => createFilePendingRequestIds(join(dir, "pending.json"), options),
};

describe("a clock is an object with now()", () => {
  it("takes Date, performance and any object with now(), called as a method", () => {
    const fallback: Clock = { now: () => 0 };
    expect(resolveClock("x", {}, fallback)).toBe(fallback);
    expect(resolveClock("x", undefined, fallback)).toBe(fallback);
    expect(resolveClock("x", { clock: Date }, fallback).now()).toBeGreaterThan(Date.UTC(2020, 0, 1));
    expect(resolveClock("x", { clock: performance }, fallback)).toBe(performance);
    const instance = new (class {
      private readonly at = 42;
      now() {
        return this.at;
      }
    })();
    expect(resolveClock("x", { clock: instance }, fallback).now()).toBe(42);
  });

  it("refuses anything without now()", () => {
    expect(() => resolveClock("x", { clock: 5 as unknown as Clock }, Date)).toThrow(
      "x: clock must be an object with now(), such as Date, got 5",
    );
    expect(() => resolveClock("x", { clock: null as unknown as Clock }, Date)).toThrow("got null");
  });

  describe.each(Object.keys(takers))("%s", (name) => {
    const take = takers[name] as (options: object) => unknown;

    it("refuses the 0.1 shapes, a bare function as clock or a now option, with the fix", () => {
      expect(() => take({ clock: () => 0 })).toThrow(
        `${name}: clock is an object with now() since 0.2, not a function: pass { now: yourFunction }, or Date`,
      );
      if (name !== "createSqliteStore" && name !== "openSqliteStoreAdmin") {
        // The stores always called theirs clock; a now there is an unknown option.
        expect(() => take({ now: () => 0 })).toThrow(`${name}: option "now" was renamed "clock" in 0.2`);
      }
    });

    it("takes Date", () => {
      if (name === "openSqliteStoreAdmin") {
        // Past the clock, opening fails on the missing file.
        expect(() => take({ clock: Date })).toThrow(/cannot open SQLite file/);
      } else {
        expect(() => take({ clock: Date })).not.toThrow();
      }
    });
  });

  it("createMemoryPendingRequestIds refuses the 0.1 positional function", () => {
    expect(() => createMemoryPendingRequestIds((() => 0) as never)).toThrow(
      "createMemoryPendingRequestIds: the clock is an option since 0.2, an object with now(): pass { clock: { now: yourFunction } }",
    );
  });

  it("times pending request IDs by the clock given", async () => {
    let at = 1_000;
    const pending = createMemoryPendingRequestIds({ clock: { now: () => at } });
    await pending.set("k", "id", 100);
    at = 1_099;
    expect(await pending.get("k")).toBe("id");
    at = 1_100;
    expect(await pending.get("k")).toBeUndefined();
  });
});
