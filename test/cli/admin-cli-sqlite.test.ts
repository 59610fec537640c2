import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { toBinary } from "@bufbuild/protobuf";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CreatePaymentResponseSchema } from "../../gen/demo/v1/payments_pb.js";
import type { RecordSummary, StoreStats } from "../../src/store/idempotency-store-admin.js";
import { createSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { useFilledStoreCli } from "../support/filled-store-cli.js";
import { filledStoreCounts, ledgerHeader } from "../support/filled-store-server.js";
import { type CliRun, runCli, runCliInTerminal, runCommand } from "../support/run-cli.js";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const createPayment = "demo.v1.PaymentService/CreatePayment";

let dir: string;
let db: string;
let image: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "admin-cli-sqlite-"));
  db = join(dir, "store.db");
  image = join(dir, "image.binpb");
  const built = await runCommand(join(repoRoot, "node_modules/@bufbuild/buf/bin/buf"), ["build", "-o", image]);
  expect(built.code, built.stderr).toBe(0);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

// Registered after the hooks above: the store opens once the folder exists,
// and, as after-hooks run last-registered first, the server closes before
// the folder is removed.
const filled = useFilledStoreCli(async () => ({
  store: createSqliteStore({ path: db, sweepIntervalMs: 0 }),
  storeArgs: ["--db", db],
  async backdate(keys, ms) {
    const writer = new Database(db);
    try {
      const shift = writer.prepare(
        `UPDATE connect_idempotency_records
SET created_at = created_at - ?, updated_at = updated_at - ?, lease_until = lease_until - ?, expires_at = expires_at - ?
WHERE key = ?`,
      );
      for (const key of keys) shift.run(ms, ms, ms, ms, key);
    } finally {
      writer.close();
    }
  },
}));
const { cli, cliJson } = filled;

/** A failing run's stderr: exactly one line, naming the program. */
function oneLine(result: CliRun): string {
  expect(result.stderr).toMatch(/^connect-idempotency: [^\n]+\n$/);
  expect(result.stdout).toBe("");
  return result.stderr;
}

describe("stats", () => {
  it("counts records by status and method, with the oldest running claim and its lease", async () => {
    const before = Date.now();
    const stats = await cliJson<StoreStats>(["stats"]);
    expect(stats).toMatchObject({ location: db, ...filledStoreCounts });
    expect(stats.oldestInProgress).toMatchObject({
      key: filled.keys.running,
      method: createPayment,
      status: "in_progress",
    });
    expect(stats.oldestInProgress?.leaseUntil).toBeGreaterThan(before);
    expect(stats.sizeBytes).toBeGreaterThan(4096);

    const table = (await cli(["stats"])).stdout;
    expect(table).toContain(`store      ${db}`);
    expect(table).toContain("records    9 (1 in progress, 1 interrupted, 7 completed, 0 tombstoned)");
    expect(table).toContain("expired    1 not yet swept");
    expect(table).toMatch(
      new RegExp(`oldest in progress: "${filled.keys.running}" of ${createPayment}, claimed \\S+ ago, lease held for`),
    );
    expect(table).toMatch(/METHOD\s+IN PROGRESS\s+INTERRUPTED\s+COMPLETED\s+TOMBSTONED\n/);
    expect(table).toMatch(/demo\.v1\.PaymentService\/CreatePayment\s+1\s+1\s+5\s+0\n/);
  });
});

describe("keys list", () => {
  it("lists records newest first, without their outcomes", async () => {
    const records = await cliJson<RecordSummary[]>(["keys", "list"]);
    expect(records).toHaveLength(9);
    const created = records.map((r) => r.createdAt);
    expect(created).toEqual([...created].sort((a, b) => b - a));
    expect(
      records
        .map((r) => r.key)
        .slice(-3)
        .sort(),
    ).toEqual([...filled.keys.old, filled.keys.expired].sort());
    const fresh = records.find((r) => r.key === filled.keys.fresh);
    expect(fresh).toMatchObject({ status: "completed", scope: "", method: createPayment });
    expect(fresh?.outcomeBytes).toBeGreaterThan(0);
    expect(fresh).not.toHaveProperty("outcome");
  });

  it("filters by method, scope, status and age, and limits", async () => {
    const keysOf = (records: RecordSummary[]) => records.map((r) => `${r.scope}/${r.key}`).sort();
    const [olderThanHour, inProgress, interrupted, acme, table] = await Promise.all([
      cliJson<RecordSummary[]>(["keys", "list", "--older-than", "1h"]),
      cliJson<RecordSummary[]>(["keys", "list", "--status", "in_progress"]),
      cliJson<RecordSummary[]>(["keys", "list", "--status", "interrupted"]),
      cliJson<RecordSummary[]>(["keys", "list", "--scope", "acme", "--method", createPayment]),
      cli(["keys", "list", "--older-than", "2h", "--method", "fixture.v1.FixtureService/Opaque", "--limit", "2"]),
    ]);
    expect(keysOf(olderThanHour)).toEqual([...filled.keys.old, filled.keys.expired].map((key) => `/${key}`).sort());
    expect(keysOf(inProgress)).toEqual([`/${filled.keys.running}`]);
    expect(keysOf(interrupted)).toEqual([`/${filled.keys.interrupted}`]);
    expect(interrupted[0]).toMatchObject({ status: "interrupted", attempt: 1, outcomeBytes: 0 });
    expect(keysOf(acme)).toEqual([`acme/${filled.keys.shared}`]);
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^CREATED\s+STATUS\s+METHOD\s+SCOPE\s+KEY\s+EXPIRES\s+OUTCOME$/);
    expect(lines).toHaveLength(2);
    expect(table.stdout).toMatch(
      new RegExp(
        `3h( \\d+m)? ago\\s+completed\\s+fixture\\.v1\\.FixtureService/Opaque\\s+-\\s+${filled.keys.expired}\\s+expired\\s+\\d+ B`,
      ),
    );
  });

  it("refuses option values it cannot read, with exit status 2", async () => {
    const [badAge, badLimit] = await Promise.all([
      cli(["keys", "list", "--older-than", "yesterday"], 2),
      cli(["keys", "list", "--limit", "0"], 2),
    ]);
    expect(badAge.stderr).toContain("expected a duration such as 90s, 10m, 2h or 7d");
    expect(badLimit.stderr).toContain("expected a positive integer");
  });
});

describe("keys show", () => {
  it("decodes the stored response with the method's type from an image", async () => {
    const shown = await cliJson<{ key: string; status: string; fingerprint: string; outcome: Record<string, unknown> }>(
      ["keys", "show", filled.keys.fresh, "--image", image],
    );
    expect(shown).toMatchObject({ key: filled.keys.fresh, status: "completed", method: createPayment, scope: "" });
    expect(shown.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    const paymentId = filled.freshResponse.payment?.paymentId ?? "";
    expect(shown.outcome).toMatchObject({
      kind: "response",
      type: "demo.v1.CreatePaymentResponse",
      json: { payment: { paymentId, accountId: "acc_fresh", amountMinor: "1250" } },
      // The handler's own header, never the protocol's.
      header: { [ledgerHeader]: paymentId.replace("pay_", "entry_") },
      trailer: {},
    });
  });

  it("decodes with descriptors buf builds from --proto-dir, for people", async () => {
    const { stdout } = await cli(["keys", "show", filled.keys.fresh, "--proto-dir", repoRoot], 0, { cwd: dir });
    expect(stdout).toContain(`key          ${filled.keys.fresh}`);
    expect(stdout).toContain("outcome      response demo.v1.CreatePaymentResponse");
    expect(stdout).toContain(`header       ${ledgerHeader}: entry_`);
    expect(stdout).toContain(`"paymentId": "${filled.freshResponse.payment?.paymentId}"`);
  });

  it("shows the raw response and the decoded envelope without descriptors", async () => {
    const expected = Buffer.from(toBinary(CreatePaymentResponseSchema, filled.freshResponse)).toString("base64");
    const { stdout } = await cli(["keys", "show", filled.keys.fresh], 0, { cwd: dir });
    expect(stdout).toContain("not decoded: no --image or --proto-dir, and no buf.yaml in the current directory");
    expect(stdout).toMatch(/ {2}00000000 {2}0a [0-9a-f]{2} /);
    expect(stdout).toContain(`base64       ${expected}`);
  });

  it("shows a stored error with its code, message and decoded details", async () => {
    const shown = await cliJson<{ outcome: Record<string, unknown> }>(["keys", "show", filled.keys.refused]);
    expect(shown.outcome).toEqual({
      kind: "error",
      bytes: expect.any(Number),
      code: "failed_precondition",
      message: "payment pay_1 is already fully refunded",
      details: [{ type: "google.rpc.ErrorInfo", json: { reason: "ALREADY_REFUNDED", domain: "payments.example" } }],
      metadata: {},
    });
  });

  it("shows a running claim without an outcome", async () => {
    const shown = await cliJson<{ status: string; outcome: unknown; leaseUntil: number }>([
      "keys",
      "show",
      filled.keys.running,
    ]);
    expect(shown).toMatchObject({ status: "in_progress", outcome: null });
  });

  it("shows an interrupted claim: no outcome, taken over by the next call with the same payload", async () => {
    const shown = await cliJson<{ status: string; attempt: number; outcome: unknown }>([
      "keys",
      "show",
      filled.keys.interrupted,
    ]);
    expect(shown).toMatchObject({ status: "interrupted", attempt: 1, outcome: null });
    const { stdout } = await cli(["keys", "show", filled.keys.interrupted]);
    expect(stdout).toContain("status       interrupted");
    expect(stdout).toContain("attempt      1\n");
    expect(stdout).toContain(
      "outcome      none: the handler failed with an indefinite error; the next call with the same payload takes it over",
    );
  });

  it("asks for --scope when a request ID exists in several scopes", async () => {
    const ambiguous = await cli(["keys", "show", filled.keys.shared], 2);
    expect(oneLine(ambiguous)).toContain(
      `request ID "${filled.keys.shared}" has 2 records; pick one with --method ${createPayment} --scope "acme" or`,
    );
    const picked = await cliJson<{ scope: string; key: string }>([
      "keys",
      "show",
      filled.keys.shared,
      "--scope",
      "globex",
    ]);
    expect(picked).toMatchObject({ scope: "globex", key: filled.keys.shared });
  });

  it("fails with exit status 2 for an unknown key or a missing image", async () => {
    const [unknown, noImage] = await Promise.all([
      cli(["keys", "show", "no-such-key"], 2),
      cli(["keys", "show", filled.keys.fresh, "--image", join(dir, "missing.binpb")], 2),
    ]);
    expect(oneLine(unknown)).toBe('connect-idempotency: no record with request ID "no-such-key"\n');
    expect(oneLine(noImage)).toContain("cannot read image");
  });
});

describe("keys evict", () => {
  it("asks on a terminal, and evicts only on yes; refuses without one unless --yes", async () => {
    const key = filled.keys.old[0];
    const [refused, no] = await Promise.all([
      cli(["keys", "evict", key], 2),
      runCliInTerminal(["keys", "evict", key, "--db", db], { input: "n\n" }),
    ]);
    expect(oneLine(refused)).toContain("without confirmation (stdin is not a terminal): pass --yes");
    expect(no.code).toBe(1);
    expect(no.stdout).toContain(
      `Evict the completed record "${key}" of ${createPayment}? The next call with this request ID runs the handler again. [y/N]`,
    );
    expect(no.stdout).toContain("connect-idempotency: not evicted");
    const yes = await runCliInTerminal(["keys", "evict", key, "--db", db], { input: "y\n" });
    expect(yes.code, yes.stdout).toBe(0);
    expect(yes.stdout).toContain(`Evicted the completed record "${key}" of ${createPayment}.`);
    expect(
      (await cliJson<RecordSummary[]>(["keys", "list", "--older-than", "1h", "--method", createPayment])).map(
        (r) => r.key,
      ),
    ).toEqual([filled.keys.old[1]]);
  });

  it("with --yes deletes the record, so that the next call with its request ID runs the handler again", async () => {
    const runsBefore = filled.server.runs.length;
    const replayed = await filled.repeatFresh();
    expect(replayed.payment?.paymentId).toBe(filled.freshResponse.payment?.paymentId);
    expect(filled.server.runs.length).toBe(runsBefore);

    const evicted = await cliJson<Record<string, unknown>>(["keys", "evict", filled.keys.fresh, "--yes"]);
    expect(evicted).toEqual({ evicted: true, scope: "", method: createPayment, key: filled.keys.fresh });

    const rerun = await filled.repeatFresh();
    expect(filled.server.runs.length).toBe(runsBefore + 1);
    expect(rerun.payment?.paymentId).not.toBe(filled.freshResponse.payment?.paymentId);
  });

  it("fails with exit status 2 for an ambiguous key, and evicts nothing", async () => {
    expect(oneLine(await cli(["keys", "evict", filled.keys.shared, "--yes"], 2))).toContain("has 2 records");
  });
});

describe("sweep", () => {
  it("deletes the expired records now and reports how many", async () => {
    expect(await cliJson<unknown>(["sweep"])).toEqual({ deleted: 1 });
    // Two evictions, one rerun of an evicted key and one sweep later.
    expect(await cliJson<StoreStats>(["stats"])).toMatchObject({
      expired: 0,
      inProgress: 1,
      interrupted: 1,
      completed: 5,
      byMethod: [
        { method: createPayment, inProgress: 1, interrupted: 1, completed: 4 },
        { method: "demo.v1.PaymentService/RefundPayment", inProgress: 0, interrupted: 0, completed: 1 },
      ],
    });
  });
});

describe("errors and read-only access", () => {
  it("exits with 2 and one line for a missing file, a bad or unreachable URL, or a file without records", async () => {
    const missing = join(dir, "missing.db");
    const noFile = await runCli(["stats", "--db", missing]);
    expect(noFile.code).toBe(2);
    expect(oneLine(noFile)).toBe(`connect-idempotency: no such file: ${missing}\n`);
    expect(existsSync(missing)).toBe(false);

    const badUrl = await runCli(["keys", "list", "--postgres", "localhost:5432/test"]);
    expect(badUrl.code).toBe(2);
    expect(oneLine(badUrl)).toContain('bad PostgreSQL URL "localhost:5432/test"');

    const unreachable = await runCli(["stats", "--postgres", "postgres://admin:hunter2@127.0.0.1:1/test"]);
    expect(unreachable.code).toBe(2);
    expect(oneLine(unreachable)).toBe(
      "connect-idempotency: postgres://admin:***@127.0.0.1:1/test: cannot connect: connect ECONNREFUSED 127.0.0.1:1\n",
    );
    expect(unreachable.stderr).not.toContain("hunter2");

    const notAStore = join(dir, "not-a-store.db");
    const created = createSqliteStore({ path: notAStore, table: "other_records", sweepIntervalMs: 0 });
    await created.close();
    const noTable = await runCli(["stats", "--db", notAStore]);
    expect(noTable.code).toBe(2);
    expect(oneLine(noTable)).toContain("has no connect-idempotency records table connect_idempotency_records");
  });

  it("shows bytes that are not a StoredOutcome raw, with the reason", async () => {
    const corrupt = new Database(db);
    corrupt.prepare("UPDATE connect_idempotency_records SET outcome = x'ff01' WHERE key = ?").run(filled.keys.old[1]);
    corrupt.close();
    const shown = await cliJson<{ outcome: Record<string, unknown> }>(["keys", "show", filled.keys.old[1]]);
    expect(shown.outcome).toMatchObject({ kind: "invalid", bytes: 2, base64: "/wE=" });
    expect(shown.outcome.problem).toEqual(expect.any(String));
  });

  it("reads without changing the file", async () => {
    await filled.finishSlowCall();
    await filled.server.close();
    // Closing checkpointed the WAL into the file and removed it.
    const digest = () => createHash("sha256").update(readFileSync(db)).digest("hex");
    const before = digest();
    await Promise.all([cli(["stats"]), cli(["keys", "show", filled.keys.refused])]);
    expect(digest()).toBe(before);
  });
});
