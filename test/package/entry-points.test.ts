import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import ts from "typescript5";
import { describe, expect, it } from "vitest";

// What each import path of the package exports, so that a change to the API is
// deliberate: a name added, moved or removed fails here until the lists below
// say so. Values are read from the loaded modules; types from the index files,
// which re-export by name only.

const repo = resolve(import.meta.dirname, "../..");

interface EntryPoint {
  readonly values: readonly string[];
  readonly types: readonly string[];
}

const expected: Record<string, EntryPoint> = {
  ".": {
    values: [
      "TelemetryAttribute",
      "TelemetryMetric",
      "atomicEffects",
      "createIdempotencyInterceptor",
      "createIdempotencyService",
      "createIdempotencyTelemetry",
      "createPostgresStore",
      "createSqliteStore",
      "defaultIndefiniteCodes",
      "defaultReleasedCodes",
      "defaultStoredCodes",
      "deriveRequestId",
      "hashRecordKey",
      "idempotencyContext",
      "interruptOnError",
      "isStoreCorruptError",
      "openPostgresStoreAdmin",
      "openSqliteStoreAdmin",
      "registerIdempotencyService",
      "releaseOnError",
      "runCluster",
      "runtimeExtensions",
      "setExecutedResourceName",
      "storeOnError",
    ],
    types: [
      "AtomicCompletion",
      "AtomicEffects",
      "AtomicIdempotencyStore",
      "ClaimInput",
      "ClaimResult",
      "ClusterWorkerExit",
      "CompleteInput",
      "CompleteWithinInput",
      "CompleteWithinResult",
      "DerivedKeyInput",
      "ErrorDisposition",
      "FoundRecord",
      "IdempotencyContextValue",
      "IdempotencyEvent",
      "IdempotencyEventType",
      "IdempotencyExtensions",
      "IdempotencyInterceptorOptions",
      "IdempotencyRecord",
      "IdempotencyServiceOptions",
      "IdempotencyStore",
      "IdempotencyStoreAdmin",
      "IdempotencyTelemetry",
      "IdempotencyTelemetryOptions",
      "MethodStats",
      "OwnerInput",
      "PhaseJsonResult",
      "PhaseKey",
      "PostgresStatements",
      "PostgresStore",
      "PostgresStoreAdminOptions",
      "PostgresStoreOptions",
      "RecordFilter",
      "RecordKey",
      "RecordPhaseInput",
      "RecordStatus",
      "RecordSummary",
      "RecordWhere",
      "RenewInput",
      "ReplayCacheOptions",
      "RunClusterOptions",
      "SqliteBatchExecutor",
      "SqliteDurability",
      "SqliteIntegrityCheck",
      "SqliteJobOptions",
      "SqliteStore",
      "SqliteStoreAdminOptions",
      "SqliteStoreOptions",
      "SqliteStoreProblem",
      "StoreCall",
      "StoreCorruptError",
      "StoreOperation",
      "StoreStats",
      "SweepInput",
      "SweepReport",
      "SynchronousTransactionRequired",
      "TelemetryOutcome",
      "TransactionMode",
      "TransactionWork",
    ],
  },
  "./client": {
    values: [
      "ERROR_DOMAIN",
      "ErrorReason",
      "callWithOutcome",
      "callWithRetry",
      "createIdempotentClient",
      "createIdempotentTransport",
      "createMemoryPendingRequestIds",
      "createRequestIdInterceptor",
      "createRequestIntent",
      "createRetryInterceptor",
      "createWebStoragePendingRequestIds",
      "defaultPendingTtlMs",
      "expiresHeader",
      "findErrorReason",
      "findRetryDelayMs",
      "firstExecutedAtHeader",
      "idempotencyExposedHeaders",
      "idempotentMutationFn",
      "idempotentMutationOptions",
      "isRetryableError",
      "lookupOutcome",
      "lookupPendingOutcome",
      "pendingKeyKey",
      "planFromPolicy",
      "randomRequestId",
      "readReplayInfo",
      "replayedHeader",
      "requestIntentKey",
      "resolveRetryPolicy",
      "retryOptionsKey",
      "withPendingKey",
      "withRequestIntent",
      "withRetryOptions",
    ],
    types: [
      "CallOutcome",
      "ClientMethodPlan",
      "ClientServicePlan",
      "IdempotentClientOptions",
      "LookedUpOutcome",
      "LookedUpTimes",
      "MutationOptionsWithTransport",
      "PendingOutcome",
      "PendingRequestIdEntry",
      "PendingRequestIds",
      "ReplayInfo",
      "RequestIdFieldName",
      "RequestIdInterceptorOptions",
      "RequestIdSourceOptions",
      "RequestIntent",
      "RetriedCall",
      "RetryEvent",
      "RetryInterceptorOptions",
      "RetryOptions",
      "RetryPolicy",
      "WebStorageLike",
      "WebStoragePendingRequestIdsOptions",
    ],
  },
  "./client/node": {
    values: ["createFilePendingRequestIds"],
    types: ["FilePendingRequestIdsOptions"],
  },
  "./protocol": {
    values: [
      "DERIVED_KEY_NAMESPACE",
      "canonicalizeRequestId",
      "createIdempotencyError",
      "decodeStoredOutcome",
      "encodeStoredOutcome",
      "fingerprintRequest",
      "resolveMethodPolicy",
    ],
    types: [
      "IdempotencyErrorDetails",
      "MethodIdempotencyPolicy",
      "RequestIdCheck",
      "RequestIdFormat",
      "StoredOutcomeValue",
    ],
  },
  "./testing": {
    values: ["createHostileInterceptor", "createHostileTransport", "createSeededRandom"],
    types: ["HostileFault", "HostileNetworkOptions"],
  },
};

/** The index file behind an import path of package.json `exports`, in src/. */
function sourceOf(target: string): string {
  return join(repo, target.replace(/^\.\/dist\//, "").replace(/\.js$/, ".ts"));
}

const manifest = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")) as {
  exports: Record<string, string | { types: string; default: string }>;
  typesVersions: { "*": Record<string, string[]> };
};
const entryPoints = Object.entries(manifest.exports)
  .filter(([path]) => path !== "./package.json" && !path.includes("*"))
  .map(([path, target]) => ({ path, source: sourceOf(typeof target === "string" ? target : target.default) }));

/** The names an index file re-exports, split into values and types, from its syntax. */
function declaredExports(source: string): EntryPoint & { readonly other: readonly string[] } {
  const file = ts.createSourceFile(source, readFileSync(source, "utf8"), ts.ScriptTarget.Latest);
  const values: string[] = [];
  const types: string[] = [];
  const other: string[] = [];
  for (const statement of file.statements) {
    if (!ts.isExportDeclaration(statement)) {
      if (!ts.isImportDeclaration(statement)) other.push(statement.getText(file));
      continue;
    }
    const clause = statement.exportClause;
    if (clause === undefined || !ts.isNamedExports(clause)) {
      other.push(statement.getText(file));
      continue;
    }
    for (const element of clause.elements) {
      (statement.isTypeOnly || element.isTypeOnly ? types : values).push(element.name.text);
    }
  }
  return { values: values.sort(), types: types.sort(), other };
}

describe("entry points", () => {
  it("package.json lists the same import paths in exports and typesVersions", () => {
    const typed = Object.keys(manifest.typesVersions["*"]).map((path) => `./${path}`.replace(/\/\*$/, "/*.js"));
    expect(typed.sort()).toEqual(
      Object.keys(manifest.exports)
        .filter((path) => path !== "./package.json" && path !== ".")
        .sort(),
    );
  });

  for (const { path, source } of entryPoints) {
    it(`${path} exports what it is meant to`, async () => {
      const declared = declaredExports(source);
      expect(declared.other, `${source} should only re-export by name`).toEqual([]);
      const loaded = Object.keys(await import(source)).sort();
      expect(loaded).toEqual(declared.values);
      expect({ values: declared.values, types: declared.types }).toEqual(expected[path]);
    });
  }

  it("no name is exported by two import paths", () => {
    const owners = new Map<string, string[]>();
    for (const { path, source } of entryPoints) {
      const declared = declaredExports(source);
      for (const name of [...declared.values, ...declared.types]) owners.set(name, [...(owners.get(name) ?? []), path]);
    }
    expect([...owners].filter(([, paths]) => paths.length > 1)).toEqual([]);
  });
});
