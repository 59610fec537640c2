import { Code, ConnectError, type Interceptor, createClient, createContextKey } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { FixtureService } from "../../gen/fixture/v1/fixture_pb.js";
import {
  type IdempotencyEvent,
  type IdempotencyInterceptorOptions,
  type IdempotencyStore,
  createIdempotencyInterceptor,
  createSqliteStore,
} from "../../src/index.js";
import { ErrorReason, findErrorReason } from "../../src/client/index.js";
import { createPostgresStore } from "../../src/store/postgres/postgres-store.js";
import { describeError, expectConnectError } from "../support/connect-assertions.js";
import { type TestHttp2Server, startHttp2Server } from "../support/http2-server.js";
import { createTestSchema, testConnectionString } from "../support/postgres-database.js";
import { createTestTransport } from "../support/test-transports.js";

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const item of open.splice(0).reverse()) await item.close();
});

function memoryStore(): IdempotencyStore {
  const store = createSqliteStore({ path: ":memory:", sweepIntervalMs: 0 });
  open.push(store);
  return store;
}

/** A fixture server whose Opaque handler counts its runs, behind `interceptors`. */
async function startFixture(interceptors: Interceptor[]) {
  let runs = 0;
  const server: TestHttp2Server = await startHttp2Server({
    interceptors,
    routes: (router) =>
      router.service(FixtureService, {
        opaque: (req) => ({ text: `${req.text} #${++runs}` }),
        plain: (req) => ({ text: req.text }),
        async upload() {
          return { size: 0n };
        },
      }),
  });
  open.push(server);
  const client = createClient(
    FixtureService,
    createTestTransport(server.baseUrl, { protocol: "connect", binary: true, gzip: false }),
  );
  return { client, runs: () => runs };
}

describe("misconfigurations are refused at construction, saying what to do", () => {
  it("a Promise as store: did you forget await", async () => {
    const schema = await createTestSchema("misuse");
    try {
      const pending = createPostgresStore({ connectionString: testConnectionString, schema: schema.name });
      expect(() => createIdempotencyInterceptor({ store: pending as unknown as IdempotencyStore })).toThrow(
        "did you forget `await createPostgresStore(...)`?",
      );
      await (await pending).close();
    } finally {
      await schema.drop();
    }
  });

  it("no store, or an object that is not a store", () => {
    expect(() => createIdempotencyInterceptor({} as IdempotencyInterceptorOptions)).toThrow(
      "the store option is missing",
    );
    expect(() => createIdempotencyInterceptor({ store: { claim() {} } as unknown as IdempotencyStore })).toThrow(
      "store is not an IdempotencyStore: it lacks complete, interrupt, release, renew, get, sweep, close",
    );
  });

  it("unknown option names, naming the known ones", () => {
    const store = memoryStore();
    expect(() => createIdempotencyInterceptor({ store, clock: Date } as IdempotencyInterceptorOptions)).toThrow(
      /unknown option "clock"\. Known options: store, scope, retentionMs,/,
    );
  });

  it.each([
    ["retention", "retentionMs"],
    ["tombstoneRetention", "tombstoneRetentionMs"],
    ["lease", "leaseMs"],
    ["leaseGrace", "leaseGraceMs"],
    ["maxWait", "maxWaitMs"],
  ])("the 0.1 option %s, refused with its new name %s", (old, renamed) => {
    const store = memoryStore();
    expect(() => createIdempotencyInterceptor({ store, [old]: 60_000 } as IdempotencyInterceptorOptions)).toThrow(
      `option "${old}" was renamed "${renamed}" (milliseconds) in 0.2`,
    );
    expect(() => createIdempotencyInterceptor({ store, [renamed]: 60_000, telemetry: false })).not.toThrow();
  });

  it("a retention past what the stores can represent, and a scope that is not a function", () => {
    const store = memoryStore();
    expect(() => createIdempotencyInterceptor({ store, retentionMs: Number.MAX_SAFE_INTEGER })).toThrow(
      "retentionMs must be at most 3153600000000 ms (100 years)",
    );
    expect(() =>
      createIdempotencyInterceptor({ store, scope: "tenant" as unknown as IdempotencyInterceptorOptions["scope"] }),
    ).toThrow("scope must be a function of the request, got string");
  });
});

describe("the scope function is checked on every call", () => {
  async function startWithScope(scope: IdempotencyInterceptorOptions["scope"]) {
    const events: IdempotencyEvent[] = [];
    const store = memoryStore();
    const fixture = await startFixture([
      createIdempotencyInterceptor({ store, scope, telemetry: false, onEvent: (e) => events.push(e) }),
    ]);
    return { ...fixture, events, store };
  }

  it("one that throws fails the call with INTERNAL SCOPE_FAILED and an event; the handler does not run", async () => {
    const failure = new Error("tenant lookup failed");
    const { client, runs, events } = await startWithScope(() => {
      throw failure;
    });
    const error = await expectConnectError(client.opaque({ key: "k-1", text: "t" }));
    expect(describeError(error)).toEqual({
      code: Code.Internal,
      reason: ErrorReason.SCOPE_FAILED,
      message: "the idempotency interceptor's scope function failed, so the request did not run",
    });
    expect(runs()).toBe(0);
    expect(events).toMatchObject([{ type: "scope_error", error: failure, method: "fixture.v1.FixtureService/Opaque" }]);
  });

  it("a ConnectError it throws reaches the client as it is", async () => {
    const { client, runs } = await startWithScope(async () => {
      throw new ConnectError("no principal", Code.Unauthenticated);
    });
    const error = await expectConnectError(client.opaque({ key: "k-1", text: "t" }));
    expect([error.code, error.rawMessage]).toEqual([Code.Unauthenticated, "no principal"]);
    expect(runs()).toBe(0);
  });

  it.each([
    ["undefined", undefined],
    ["null", null],
    ["a number", 42],
    ["an object", { tenant: "a" }],
  ])("one that returns %s fails with INTERNAL SCOPE_INVALID, naming the likely interceptor order", async (_, value) => {
    const { client, runs, events, store } = await startWithScope(() => value as unknown as string);
    const error = await expectConnectError(client.opaque({ key: "k-1", text: "t" }));
    expect(error.code).toBe(Code.Internal);
    expect(findErrorReason(error)).toBe(ErrorReason.SCOPE_INVALID);
    expect(error.rawMessage).toContain("put that interceptor before the idempotency interceptor");
    expect(runs()).toBe(0);
    expect(events.map((e) => e.type)).toEqual(["scope_error"]);
    expect(await store.get({ scope: "42", method: "fixture.v1.FixtureService/Opaque", key: "k-1" })).toBeUndefined();
  });
});

describe("interceptor order", () => {
  // A principal key whose default is undefined: read before auth ran, the
  // scope is no string, and the interceptor refuses the call.
  const principal = createContextKey<string | undefined>(undefined);
  const auth: Interceptor = (next) => async (req) => {
    const user = /^Bearer (\w+)$/.exec(req.header.get("authorization") ?? "")?.[1];
    if (user === undefined) throw new ConnectError("missing token", Code.Unauthenticated);
    req.contextValues.set(principal, user);
    return next(req);
  };
  const as = (user?: string) => ({ headers: user === undefined ? {} : { authorization: `Bearer ${user}` } });

  it("[idempotency, auth] is caught on the first call when the principal key has no default", async () => {
    const store = memoryStore();
    const idempotency = createIdempotencyInterceptor({
      store,
      scope: (req) => req.contextValues.get(principal)!,
      telemetry: false,
    });
    const { client, runs } = await startFixture([idempotency, auth]);
    const error = await expectConnectError(client.opaque({ key: "k-1", text: "statement" }, as("alice")));
    expect(findErrorReason(error)).toBe(ErrorReason.SCOPE_INVALID);
    expect(runs()).toBe(0);
  });

  it("a caller without credentials never poisons the rightful caller's key, in either order", async () => {
    for (const order of ["right", "wrong"] as const) {
      const store = memoryStore();
      // With a "" default the wrong order is not caught: every caller shares the scope "".
      const anonymous = createContextKey<string>("");
      const authInto: Interceptor = (next) => async (req) => {
        const user = /^Bearer (\w+)$/.exec(req.header.get("authorization") ?? "")?.[1];
        if (user === undefined) throw new ConnectError("missing token", Code.Unauthenticated);
        req.contextValues.set(anonymous, user);
        return next(req);
      };
      const idempotency = createIdempotencyInterceptor({
        store,
        scope: (req) => req.contextValues.get(anonymous),
        telemetry: false,
      });
      const { client } = await startFixture(order === "right" ? [authInto, idempotency] : [idempotency, authInto]);
      const refused = await expectConnectError(client.opaque({ key: "k-2", text: "statement" }, as()));
      expect(refused.code).toBe(Code.Unauthenticated);
      // UNAUTHENTICATED is released, not stored: alice's call with the same key runs.
      expect((await client.opaque({ key: "k-2", text: "statement" }, as("alice"))).text).toBe("statement #1");
    }
  });
});

describe("the interceptor registered twice", () => {
  it("the same instance twice: the inner one passes the claimed call through, the handler runs once", async () => {
    const idempotency = createIdempotencyInterceptor({ store: memoryStore(), telemetry: false, maxWaitMs: 60_000 });
    const { client, runs } = await startFixture([idempotency, idempotency]);
    const started = performance.now();
    const first = await client.opaque({ key: "k-1", text: "t" });
    expect(await client.opaque({ key: "k-1", text: "t" })).toEqual(first);
    expect(runs()).toBe(1);
    // No deadlock with itself until maxWaitMs.
    expect(performance.now() - started).toBeLessThan(30_000);
  });

  it("two instances on one store: one execution, no wait for itself", async () => {
    const store = memoryStore();
    const { client, runs } = await startFixture([
      createIdempotencyInterceptor({ store, telemetry: false, maxWaitMs: 60_000 }),
      createIdempotencyInterceptor({ store, telemetry: false, maxWaitMs: 60_000 }),
    ]);
    const first = await client.opaque({ key: "k-1", text: "t" });
    expect(await client.opaque({ key: "k-1", text: "t" })).toEqual(first);
    expect(runs()).toBe(1);
  });
});
