import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import { expectConnectError } from "../support/connect-assertions.js";
import { payment } from "../support/fault-harness.js";
import { usePerTestScratch } from "../support/per-test-scratch.js";
import { retryWhileInProgress } from "../support/retry-while-in-progress.js";
import { type ServerProcess, startServerProcess } from "../support/server-process.js";
import { createTestTransport } from "../support/test-transports.js";

const script = fileURLToPath(new URL("../support/payment-server-process.ts", import.meta.url));

const scratch = usePerTestScratch("idempotency-processes-");

async function start(env: Record<string, string> = {}): Promise<ServerProcess> {
  const server = await startServerProcess({
    script,
    env: {
      IDEMPOTENCY_STORE: "sqlite",
      SQLITE_PATH: join(scratch.dir, "records.db"),
      EXECUTIONS_FILE: join(scratch.dir, "executions.log"),
      ...env,
    },
  });
  scratch.closeAfter(() => server.kill());
  return server;
}

function client(server: ServerProcess) {
  return createClient(
    PaymentService,
    createTestTransport(server.baseUrl, { protocol: "connect", binary: true, gzip: false }),
  );
}

/** The handler executions all processes recorded: `[method, requestId, pid, takeover]`. */
function executions(): string[][] {
  const file = join(scratch.dir, "executions.log");
  return existsSync(file)
    ? readFileSync(file, "utf8")
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => line.split("\t"))
    : [];
}

describe("several processes", () => {
  it("duplicates spread over three server processes sharing one SQLite file run once", async () => {
    const servers = await Promise.all([start(), start(), start()]);
    const clients = servers.map(client);
    const keys = Array.from({ length: 20 }, () => crypto.randomUUID());
    // Each key first goes to its home process; once that one runs the
    // handler (200 ms), duplicates go to all three processes, so that they
    // arrive while the execution is in flight in another process.
    const results = await Promise.all(
      keys.map(async (key, i) => {
        const home = clients[i % clients.length] ?? clients[0];
        const first = home.createPayment(payment(key, 200));
        await expect.poll(() => executions().some(([, k]) => k === key), { timeout: 10_000 }).toBe(true);
        const duplicates = clients.map((c) => retryWhileInProgress(() => c.createPayment(payment(key, 200))));
        return Promise.all([first, ...duplicates]);
      }),
    );
    for (const responses of results) {
      expect(new Set(responses.map((r) => r.payment?.paymentId)).size).toBe(1);
    }
    const executed = executions().map(([, key]) => key);
    expect(executed.toSorted()).toEqual(keys.toSorted());
    // Executions really were spread over the processes.
    expect(new Set(executions().map(([, , pid]) => pid))).toEqual(new Set(servers.map((s) => String(s.pid))));
  });
});

describe("crash", () => {
  it("after a SIGKILL mid-handler, a retry runs exactly once more after the lease; later duplicates replay", async () => {
    // The first process hangs in its handler until it is killed.
    const doomed = await start({ LEASE_MS: "1000", HANDLER_DELAY_MS: "600000" });
    const key = crypto.randomUUID();
    const lost = expectConnectError(client(doomed).createPayment(payment(key)));
    await expect.poll(() => executions().length, { timeout: 10_000 }).toBe(1);
    await doomed.kill("SIGKILL");
    // The connection dies with the process: the client never got an answer.
    expect([Code.Canceled, Code.Unavailable, Code.Internal]).toContain((await lost).code);

    // A retry on a surviving process waits (up to MAX_WAIT_MS) while the dead
    // claim's lease lasts, then takes it over.
    const survivor = await start({ LEASE_MS: "1000", MAX_WAIT_MS: "10000" });
    const recovered = await client(survivor).createPayment(payment(key));
    expect(recovered.payment?.paymentId).toMatch(new RegExp(`^pay_${survivor.pid}_`));
    expect(executions()).toEqual([
      ["CreatePayment", key, String(doomed.pid), "false"],
      ["CreatePayment", key, String(survivor.pid), "true"],
    ]);

    // Later duplicates replay, on any process.
    const another = await start({ LEASE_MS: "1000" });
    expect(await client(survivor).createPayment(payment(key))).toEqual(recovered);
    expect(await client(another).createPayment(payment(key))).toEqual(recovered);
    expect(executions()).toHaveLength(2);
  });
});
