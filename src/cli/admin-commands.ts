import { createInterface } from "node:readline/promises";
import type { Code } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { type Command, InvalidArgumentError } from "commander";
import type { IdempotencyRecord, RecordStatus } from "../store/idempotency-store.js";
import type {
  FoundRecord,
  IdempotencyStoreAdmin,
  RecordSummary,
  RecordWhere,
  StoreStats,
} from "../store/idempotency-store-admin.js";
import { createCliError, runCliAction } from "./cli-error.js";
import { describeOutcome, type OutcomeView } from "./describe-outcome.js";
import { displayText, escapeControls, escapeJsonControls, quoteText } from "./escape-text.js";
import { formatDuration, parseDuration } from "./duration-text.js";
import { formatTable } from "./format-table.js";
import { loadDescriptors } from "./load-descriptors.js";
import { openStoreAdmin, type StoreFlags } from "./open-store-admin.js";

interface OutputFlags {
  readonly json?: boolean;
}

interface ListFlags extends StoreFlags, OutputFlags {
  readonly method?: string;
  readonly scope?: string;
  readonly status?: RecordStatus;
  readonly olderThan?: number;
  readonly limit: number;
}

interface ShowFlags extends StoreFlags, OutputFlags, RecordWhere {
  readonly image?: string;
  readonly protoDir?: string;
}

interface EvictFlags extends StoreFlags, OutputFlags, RecordWhere {
  readonly yes?: boolean;
  readonly corrupt?: boolean;
}

interface CorruptFlags extends StoreFlags, OutputFlags {
  readonly limit: number;
}

/** The default of --wait: as long as a server waits for the write lock. */
const defaultWaitMs = 5000;

/**
 * Adds the operator commands to the `connect-idempotency` program: `stats`,
 * `keys list`, `keys show`, `keys corrupt`, `keys evict` (one record, or
 * every damaged one with `--corrupt`) and `sweep`, on a SQLite file
 * (`--db`) or a PostgreSQL table (`--postgres`). Only `keys evict` and
 * `sweep` change records; the others open the store read-only. `keys evict`
 * and `sweep` wait up to `--wait` (default 5 s) for another process holding
 * the SQLite write lock, then fail with a message naming the lock and, when
 * `/proc/locks` tells, the process holding it. Output is a table for people
 * or JSON with `--json`, stored strings with their control and bidirectional
 * characters escaped; errors are one line on stderr, with exit status 2 for
 * what the operator can correct.
 */
export function addAdminCommands(program: Command): void {
  adminCommand(program, "stats")
    .description("count records by status and method, and show the oldest running claim")
    .action(
      runCliAction(async (flags: StoreFlags & OutputFlags) => {
        await withAdmin(flags, "read", async (admin) => {
          const stats = await admin.stats();
          report(flags, { ...stats, oldestInProgress: stats.oldestInProgress ?? null }, () => formatStats(stats));
        });
      }),
    );

  const keys = program.command("keys").description("inspect and evict idempotency records");
  adminCommand(keys, "list")
    .description("list records, newest first")
    .option("--method <method>", "only this method, such as demo.v1.PaymentService/CreatePayment")
    .option("--scope <scope>", "only this scope (tenant)")
    .option("--status <status>", "only in_progress, interrupted, completed or tombstoned records", parseStatus)
    .option("--older-than <duration>", "only records created longer ago than this, such as 10m, 2h or 7d", parseAge)
    .option("--limit <n>", "at most this many records", parseLimit, 50)
    .action(
      runCliAction(async (flags: ListFlags) => {
        await withAdmin(flags, "read", async (admin) => {
          const records = await admin.list({
            method: flags.method,
            scope: flags.scope,
            status: flags.status,
            olderThanMs: flags.olderThan,
            limit: flags.limit,
          });
          report(flags, records, () => formatList(records));
        });
      }),
    );

  adminCommand(keys, "show")
    .description("show one record with its stored outcome")
    .argument("<key>", "the request ID")
    .option("--method <method>", "the method, when the request ID exists under several")
    .option("--scope <scope>", "the scope, when the request ID exists under several")
    .option("--image <file>", "decode responses with this image (buf build -o FILE)")
    .option("--proto-dir <dir>", "decode responses with the descriptors buf builds in this directory")
    .action(
      runCliAction(async (key: string, flags: ShowFlags) => {
        await withAdmin(flags, "read", async (admin) => {
          const record = await findOne(admin, key, flags);
          let outcome: OutcomeView | undefined;
          if (record.outcome !== undefined) {
            const source = { image: flags.image, protoDir: flags.protoDir, cwd: process.cwd() };
            outcome = describeOutcome(record.method, record.outcome, await loadDescriptors(source));
          }
          const { outcome: _, ...fields } = record;
          report(flags, { ...fields, outcome: outcome ?? null }, () => formatRecord(record, outcome));
        });
      }),
    );

  adminCommand(keys, "corrupt")
    .description(
      "list records whose checksum does not match what they hold; calls with their request IDs fail with STORE_CORRUPT",
    )
    .option("--limit <n>", "at most this many records", parseLimit, 1000)
    .action(
      runCliAction(async (flags: CorruptFlags) => {
        await withAdmin(flags, "read", async (admin) => {
          const records = await admin.corrupt(flags.limit);
          report(flags, records, () =>
            records.length === 0
              ? "No damaged records."
              : `${formatList(records)}\n\n${records.length} damaged record${records.length === 1 ? "" : "s"}: ` +
                "calls with these request IDs fail with DATA_LOSS STORE_CORRUPT until evicted (keys evict --corrupt).",
          );
        });
      }),
    );

  adminCommand(keys, "evict")
    .description("delete one record, so that the next call with its request ID runs the handler again")
    .argument("[key]", "the request ID")
    .option("--method <method>", "the method, when the request ID exists under several")
    .option("--scope <scope>", "the scope, when the request ID exists under several")
    .option("--corrupt", "instead of one record, delete every record whose checksum does not match (see keys corrupt)")
    .option("-y, --yes", "do not ask for confirmation")
    .option(...waitOption)
    .action(
      runCliAction(async (key: string | undefined, flags: EvictFlags) => {
        if (flags.corrupt === true) {
          if (key !== undefined || flags.method !== undefined || flags.scope !== undefined) {
            throw createCliError(
              "--corrupt evicts every damaged record: pass no request ID, --method or --scope with it",
            );
          }
          await withAdmin(flags, "write", (admin) => evictCorrupt(admin, flags));
          return;
        }
        if (key === undefined) {
          throw createCliError("name the record to evict by its request ID, or pass --corrupt");
        }
        await withAdmin(flags, "write", async (admin) => {
          const record = await findOne(admin, key, flags);
          const what = `${record.status} record ${describeKey(record)}`;
          if (flags.yes !== true) {
            await confirmOrRefuse(
              `evict the ${what}`,
              `Evict the ${what}? The next call with this request ID runs the handler again. [y/N] `,
            );
          }
          if (!(await lockHint(admin.evict(record)))) {
            throw createCliError(`the ${what} was deleted meanwhile`);
          }
          const evicted = { evicted: true, scope: record.scope, method: record.method, key: record.key };
          report(flags, evicted, () => `Evicted the ${what}.`);
        });
      }),
    );

  adminCommand(program, "sweep")
    .description("delete expired records now")
    .option(...waitOption)
    .action(
      runCliAction(async (flags: StoreFlags & OutputFlags) => {
        await withAdmin(flags, "write", async (admin) => {
          const deleted = await lockHint(admin.sweep());
          report(flags, { deleted }, () => `Deleted ${deleted} expired record${deleted === 1 ? "" : "s"}.`);
        });
      }),
    );
}

/** `--wait`, for the commands that write. */
const waitOption = [
  "--wait <ms>",
  `how long to wait for a server or another tool holding the SQLite write lock, in ms or as a duration such as 30s (default ${defaultWaitMs})`,
  parseWait,
] as const;

/**
 * Adds to a write that gave up on another connection's lock what to do
 * about it; the store admin's message already names the lock and, when it
 * can tell, the process holding it.
 */
async function lockHint<T>(write: Promise<T>): Promise<T> {
  try {
    return await write;
  } catch (error) {
    if ((error as { code?: unknown } | null)?.code !== "SQLITE_BUSY") throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(
      `${message}; nothing was changed: run it again once the lock is free, or wait longer with --wait <ms>`,
      {
        cause: error,
      },
    );
  }
}

/** A subcommand with the store and output options every admin command takes. */
function adminCommand(parent: Command, name: string): Command {
  return parent
    .command(name)
    .option("--db <file>", "the SQLite file of the store")
    .option("--postgres <url>", "the PostgreSQL connection string of the store, such as postgres://app@db:5432/app")
    .option("--schema <schema>", "the PostgreSQL schema of the table (default public)")
    .option("--table <table>", "the records table (default connect_idempotency_records)")
    .option("--json", "print JSON for scripts instead of tables");
}

async function withAdmin(
  flags: StoreFlags,
  access: "read" | "write",
  use: (admin: IdempotencyStoreAdmin) => Promise<void>,
): Promise<void> {
  const admin = await openStoreAdmin(flags, access);
  try {
    await use(admin);
  } finally {
    await admin.close();
  }
}

/** The one record a request ID names, narrowed by --method and --scope. */
async function findOne(admin: IdempotencyStoreAdmin, key: string, where: RecordWhere): Promise<FoundRecord> {
  const found = await admin.find(key, { method: where.method, scope: where.scope });
  const only = found[0];
  if (only === undefined) {
    throw createCliError(`no record with request ID ${quoteText(key)}${describeWhere(where)}`);
  }
  if (found.length > 1) {
    const candidates = found.map(
      (record) => `--method ${displayText(record.method)} --scope ${quoteText(record.scope)}`,
    );
    throw createCliError(
      `request ID ${quoteText(key)} has ${found.length} records; pick one with ${candidates.join(" or ")}`,
    );
  }
  return only;
}

/** Deletes every damaged record, after confirmation unless --yes. */
async function evictCorrupt(admin: IdempotencyStoreAdmin, flags: EvictFlags): Promise<void> {
  if (flags.yes !== true) {
    const found = await admin.corrupt(Number.MAX_SAFE_INTEGER);
    if (found.length === 0) {
      report(flags, { evicted: 0 }, () => "No damaged records.");
      return;
    }
    const what = `${found.length} damaged record${found.length === 1 ? "" : "s"}`;
    await confirmOrRefuse(
      `evict ${what}`,
      `Evict ${what}? The next call with each of their request IDs runs the handler again, though it may have run before. [y/N] `,
    );
  }
  const evicted = await admin.evictCorrupt();
  report(flags, { evicted }, () => `Evicted ${evicted} damaged record${evicted === 1 ? "" : "s"}.`);
}

/** Asks on the terminal; refuses without one, and fails when the operator says no. */
async function confirmOrRefuse(action: string, question: string): Promise<void> {
  if (process.stdin.isTTY !== true) {
    throw createCliError(`refusing to ${action} without confirmation (stdin is not a terminal): pass --yes`);
  }
  if (!(await confirm(question))) {
    // The operator said no: a failure, but not a usage error.
    throw new Error("not evicted");
  }
}

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

// Ages and leases are measured against the store's clock (`readAt`), never
// this machine's: a PostgreSQL server's clock is what leases run by.
function formatStats(stats: StoreStats): string {
  const now = stats.readAt;
  const total = stats.inProgress + stats.interrupted + stats.completed + stats.tombstoned;
  const lines = [
    `store      ${displayText(stats.location)} (${formatBytes(stats.sizeBytes)})`,
    `records    ${total} (${stats.inProgress} in progress, ${stats.interrupted} interrupted, ${stats.completed} completed, ` +
      `${stats.tombstoned} tombstoned)`,
    `expired    ${stats.expired} not yet swept`,
  ];
  const oldest = stats.oldestInProgress;
  if (oldest === undefined) {
    lines.push("oldest in progress: none");
  } else {
    const lease =
      oldest.leaseUntil > now
        ? `lease held for ${formatDuration(oldest.leaseUntil - now)} more`
        : `lease ended ${formatDuration(now - oldest.leaseUntil)} ago; a retry takes it over once the grace period passed`;
    lines.push(
      `oldest in progress: ${describeKey(oldest)}, claimed ${formatDuration(now - oldest.createdAt)} ago, ${lease}`,
    );
  }
  if (stats.byMethod.length > 0) {
    lines.push(
      "",
      formatTable(
        ["METHOD", "IN PROGRESS", "INTERRUPTED", "COMPLETED", "TOMBSTONED"],
        stats.byMethod.map((m) => [
          displayText(m.method),
          String(m.inProgress),
          String(m.interrupted),
          String(m.completed),
          String(m.tombstoned),
        ]),
      ),
    );
  }
  return lines.join("\n");
}

function formatList(records: readonly RecordSummary[]): string {
  if (records.length === 0) {
    return "No records.";
  }
  return formatTable(
    ["CREATED", "STATUS", "METHOD", "SCOPE", "KEY", "EXPIRES", "OUTCOME"],
    records.map((r) => [
      `${formatDuration(r.readAt - r.createdAt)} ago`,
      r.status,
      displayText(r.method),
      r.scope === "" ? "-" : displayText(r.scope),
      displayText(r.key),
      r.expiresAt <= r.readAt ? "expired" : `in ${formatDuration(r.expiresAt - r.readAt)}`,
      r.status === "completed" || (r.status === "tombstoned" && r.outcomeBytes > 0) ? formatBytes(r.outcomeBytes) : "-",
    ]),
  );
}

function formatRecord(record: FoundRecord, outcome: OutcomeView | undefined): string {
  const now = record.readAt;
  const time = (ms: number) =>
    `${new Date(ms).toISOString()} (${ms <= now ? `${formatDuration(now - ms)} ago` : `in ${formatDuration(ms - now)}`})`;
  const lines = [
    `key          ${displayText(record.key)}`,
    `method       ${displayText(record.method)}`,
    `scope        ${record.scope === "" ? '"" (the default scope)' : displayText(record.scope)}`,
    `status       ${record.status}`,
    `fingerprint  ${displayText(record.fingerprint)}`,
    `owner        ${displayText(record.owner)}`,
    `created      ${time(record.createdAt)}`,
    `updated      ${time(record.updatedAt)}`,
    `lease until  ${time(record.leaseUntil)}`,
    ...(record.replayUntil === undefined ? [] : [`replay until ${time(record.replayUntil)}`]),
    `expires      ${time(record.expiresAt)}`,
    `attempt      ${record.attempt}${describeTakeovers(record.attempt - 1)}`,
    `stage        ${describeStage(record)}`,
  ];
  if (record.damaged) {
    lines.push(
      "checksum     MISMATCH: this record is damaged and what follows may be altered; calls with its request ID " +
        "fail with DATA_LOSS STORE_CORRUPT until it is evicted (keys evict --corrupt)",
    );
  }
  if (outcome === undefined) {
    lines.push(
      record.status === "tombstoned"
        ? `outcome      dropped past its replay window; it answered with code ${record.outcomeCode ?? 0}` +
            ` (${codeName(record.outcomeCode ?? 0)})`
        : record.status === "interrupted"
          ? "outcome      none: the handler failed with an indefinite error; the next call with the same payload takes it over"
          : "outcome      none yet: the call is running, or its process died before it finished",
    );
    return lines.join("\n");
  }
  switch (outcome.kind) {
    case "invalid":
      lines.push(
        `outcome      ${formatBytes(outcome.bytes)}, not a StoredOutcome: ${outcome.problem}`,
        hexDump(outcome.base64),
      );
      break;
    case "executed":
      lines.push(
        "outcome      executed, response not kept (on_duplicate: DUPLICATE_MODE_REJECT; duplicates get ALREADY_EXISTS)",
        `resource     ${outcome.resourceName === "" ? "none named" : outcome.resourceName}`,
      );
      break;
    case "error":
      lines.push(`outcome      error ${outcome.code}: ${displayText(outcome.message)}`);
      for (const detail of outcome.details) {
        const value =
          detail.json !== undefined ? escapeJsonControls(JSON.stringify(detail.json)) : `(base64) ${detail.base64}`;
        lines.push(`detail       ${displayText(detail.type)} ${value}`);
      }
      lines.push(...headerLines("metadata", outcome.metadata));
      break;
    case "response":
      lines.push(...headerLines("header", outcome.header), ...headerLines("trailer", outcome.trailer));
      if (outcome.json !== undefined) {
        lines.push(
          `outcome      response ${displayText(outcome.type ?? "")}`,
          indent(escapeJsonControls(JSON.stringify(outcome.json, null, 2))),
        );
      } else {
        const size = formatBytes(Buffer.from(outcome.base64, "base64").byteLength);
        lines.push(
          `outcome      response, ${size} in protobuf binary (not decoded: ${outcome.note})`,
          hexDump(outcome.base64),
          `base64       ${outcome.base64}`,
        );
      }
      break;
  }
  return lines.join("\n");
}

// Which part of its life a record is in, by the store's clock.
function describeStage(record: FoundRecord): string {
  const now = record.readAt;
  if (
    record.expiresAt <= now &&
    (record.status === "completed" || record.status === "tombstoned" || record.leaseUntil <= now)
  ) {
    return "expired: counts as absent, and the sweeper deletes it";
  }
  switch (record.status) {
    case "in_progress":
      return "running: duplicates wait for it";
    case "interrupted":
      return "interrupted: the next call with the same payload takes it over";
    case "completed":
      return record.replayUntil === undefined
        ? "replay: duplicates get the stored outcome; no tombstone follows"
        : "replay: duplicates get the stored outcome; a tombstone follows from replay until";
    case "tombstoned":
      return (
        `tombstone (original code ${record.outcomeCode ?? 0}): the outcome is no longer replayed; ` +
        "duplicates get FAILED_PRECONDITION REQUEST_ID_EXPIRED until it expires"
      );
  }
}

// Named as the outcome line of a kept error names it (`failed_precondition`).
function codeName(code: number): string {
  return code === 0 ? "ok" : codeToString(code as Code);
}

function describeTakeovers(takeovers: number): string {
  return takeovers === 0 ? "" : ` (taken over ${takeovers} time${takeovers === 1 ? "" : "s"})`;
}

function headerLines(label: string, headers: Record<string, string>): string[] {
  return Object.entries(headers).map(
    ([name, value]) => `${label.padEnd(12)} ${displayText(name)}: ${displayText(value)}`,
  );
}

// The first 256 bytes, 16 per line, as `xxd` prints them.
function hexDump(base64: string): string {
  const bytes = Buffer.from(base64, "base64");
  const shown = bytes.subarray(0, 256);
  const lines: string[] = [];
  for (let offset = 0; offset < shown.length; offset += 16) {
    const row = shown.subarray(offset, offset + 16);
    const hex = [...row].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    const text = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
    lines.push(`  ${offset.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${text}`);
  }
  if (bytes.length > shown.length) {
    lines.push(`  ... ${bytes.length - shown.length} more bytes`);
  }
  return lines.join("\n");
}

function indent(text: string): string {
  return text
    .split("\n")
    .map((line) => `  ${line}`)
    .join("\n");
}

function describeKey(record: Pick<IdempotencyRecord, "key" | "method" | "scope">): string {
  return `${quoteText(record.key)} of ${displayText(record.method)}${record.scope === "" ? "" : ` in scope ${quoteText(record.scope)}`}`;
}

function describeWhere(where: RecordWhere): string {
  return (
    (where.method === undefined ? "" : ` of ${displayText(where.method)}`) +
    (where.scope === undefined ? "" : ` in scope ${quoteText(where.scope)}`)
  );
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * Prints `data` as JSON with --json, else the text for people. Stored text
 * never reaches the terminal raw: fields are escaped where they are laid
 * out, and whatever control character is left is escaped here.
 */
function report(flags: OutputFlags, data: unknown, text: () => string): void {
  const output = flags.json === true ? escapeJsonControls(JSON.stringify(data, null, 2)) : escapeControls(text(), true);
  process.stdout.write(`${output}\n`);
}

function parseStatus(value: string): RecordStatus {
  if (value !== "in_progress" && value !== "interrupted" && value !== "completed" && value !== "tombstoned") {
    throw new InvalidArgumentError("expected in_progress, interrupted, completed or tombstoned");
  }
  return value;
}

function parseAge(value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined) {
    throw new InvalidArgumentError("expected a duration such as 90s, 10m, 2h or 7d");
  }
  return ms;
}

function parseWait(value: string): number {
  const ms = /^\d+$/.test(value.trim()) ? Number(value) : parseDuration(value);
  if (ms === undefined || !Number.isSafeInteger(ms)) {
    throw new InvalidArgumentError("expected milliseconds, such as 30000, or a duration such as 30s or 2m");
  }
  return ms;
}

function parseLimit(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new InvalidArgumentError("expected a positive integer");
  }
  return n;
}
