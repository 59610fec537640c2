// A child process for the PostgreSQL clock tests, run (under libfaketime, to
// skew its clock) with
// `node --import tsx test/support/postgres-claim-process.ts <url> <schema> <table> <claim-json>`.
// Claims once on a store of its own and prints one JSON line:
// `{"localNow": <its Date.now() when it claimed>, "result": <the ClaimResult>}`.
import { createPostgresStore } from "../../src/store/postgres/postgres-store.js";
import type { ClaimInput } from "../../src/store/idempotency-store.js";

const [connectionString, schema, table, claimJson] = process.argv.slice(2);
if (claimJson === undefined) {
  throw new Error("usage: postgres-claim-process.ts <url> <schema> <table> <claim-json>");
}
const store = await createPostgresStore({ connectionString, schema, table, sweepIntervalMs: 0 });
try {
  const localNow = Date.now();
  const result = await store.claim(JSON.parse(claimJson) as ClaimInput);
  process.stdout.write(`${JSON.stringify({ localNow, result })}\n`);
} finally {
  await store.close();
}
