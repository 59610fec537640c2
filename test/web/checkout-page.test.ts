import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, type BrowserContext, type Page, chromium } from "playwright-core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type WebCheckout, startWebCheckout } from "../../demo/web/web-checkout.js";

// Debian's chromium, installed by .ci/run (CHROMIUM_PATH overrides it). app.test resolves to loopback:
// an origin that is not secure (no crypto.randomUUID) and not the API's.
const launchArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--host-resolver-rules=MAP app.test 127.0.0.1",
];

let checkout: WebCheckout;
let browser: Browser;
let dataDir: string;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "web-checkout-"));
  checkout = await startWebCheckout({ dataDir, port: 0 });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: launchArgs,
  });
});

afterAll(async () => {
  await Promise.all(contexts.map((context) => context.close()));
  await browser?.close();
  await checkout?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

beforeEach(() => {
  Object.assign(checkout.faults, {
    dropAnswers: 0,
    resetConnections: 0,
    holdAnswerMs: 0,
    exposeIdempotencyHeaders: true,
  });
});

/** A fresh browser profile (no storage) on the checkout of `account`. */
async function openCheckout(account: string, query = ""): Promise<Page> {
  const context = await browser.newContext();
  contexts.push(context);
  const page = await context.newPage();
  await page.goto(`${checkoutUrl(account)}${query}`);
  await page.getByTestId("network-state").getByText("drop").waitFor();
  return page;
}

const repoRoot = join(import.meta.dirname, "../..");
const screenshotPath =
  process.env.SAVE_DOCS_SCREENSHOT === "1"
    ? join(repoRoot, "docs/images/checkout.png")
    : join(repoRoot, ".data/test-web/checkout.png");

const checkoutUrl = (account: string) => `http://app.test:${checkout.port}/?account=${account}`;

/** Sets the network switches through the page's own controls. */
async function setNetwork(page: Page, switches: { drop?: number; reset?: number; hold?: number; expose?: boolean }) {
  await page.getByTestId("drop").fill(String(switches.drop ?? 0));
  await page.getByTestId("reset").fill(String(switches.reset ?? 0));
  await page.getByTestId("hold").fill(String(switches.hold ?? 0));
  await page.getByTestId("expose").setChecked(switches.expose ?? true);
  await page.getByTestId("apply-network").click();
  const expected = `drop ${switches.drop ?? 0}, reset ${switches.reset ?? 0}, hold ${switches.hold ?? 0} ms, headers ${(switches.expose ?? true) ? "exposed" : "hidden"}`;
  await page.getByTestId("network-state").getByText(expected).waitFor();
}

/** The page's log rows as data. */
async function logRows(page: Page) {
  return await page
    .getByTestId("log")
    .locator("tr")
    .evaluateAll((rows) =>
      rows.map((row) => {
        // The test compiles without the DOM library: only what is read is typed.
        const el = row as unknown as {
          readonly dataset: Record<string, string | undefined>;
          readonly textContent: string | null;
        };
        return {
          via: el.dataset.via ?? "",
          kind: el.dataset.kind ?? "",
          requestId: el.dataset.requestId ?? "",
          replayed: el.dataset.replayed === "true",
          text: el.textContent ?? "",
        };
      }),
    );
}

/** Waits for the `n`th result row (paid or failed) of `via` in the log. */
async function result(page: Page, via: "client" | "tanstack", n = 1) {
  const rows = page.locator(`[data-testid=log] tr[data-via=${via}]:is([data-kind=paid],[data-kind=failed])`);
  await rows.nth(n - 1).waitFor({ timeout: 20_000 });
  return (await logRows(page)).filter((row) => row.via === via && row.kind !== "attempt")[n - 1];
}

/**
 * Reloads the page as soon as the bank has charged, while the answer is
 * still held back (1.5 s): mid-request, and on a slow machine too.
 */
async function reloadOnceCharged(page: Page) {
  const account = new URL(page.url()).searchParams.get("account") ?? "";
  await expect.poll(() => charges(account).length, { timeout: 10_000, interval: 20 }).toBe(1);
  await page.reload();
}

const charges = (account: string) => checkout.ledger.charges(account);
const attemptsSince = (start: number) =>
  checkout.attempts.slice(start).filter((a) => a.path.endsWith("/CreatePayment"));

describe("the checkout page in Chromium", () => {
  it("pays once with answers dropped, on an origin without crypto.randomUUID, and shows the replay", async () => {
    const page = await openCheckout("acct-drop");
    const origin = await page.evaluate(() => {
      const scope = globalThis as unknown as { isSecureContext: boolean; crypto: { randomUUID?: unknown } };
      return [scope.isSecureContext, typeof scope.crypto.randomUUID];
    });
    expect(origin).toEqual([false, "undefined"]);
    await setNetwork(page, { drop: 2 });
    const start = checkout.attempts.length;
    await page.getByTestId("pay").click();
    const paid = await result(page, "client");
    expect(paid?.kind).toBe("paid");
    expect(paid?.replayed).toBe(true);
    expect(paid?.text).toContain("already paid");
    const seen = attemptsSince(start);
    expect(seen.map((a) => a.fate)).toEqual(["answer dropped", "answer dropped", "answered"]);
    expect(new Set(seen.map((a) => a.requestId)).size).toBe(1);
    expect(seen[0]?.requestId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(charges("acct-drop")).toHaveLength(1);
  });

  it("retries a connection reset before the server with the same ID", async () => {
    const page = await openCheckout("acct-reset");
    await setNetwork(page, { reset: 2 });
    const start = checkout.attempts.length;
    await page.getByTestId("pay").click();
    const paid = await result(page, "client");
    expect([paid?.kind, paid?.replayed]).toEqual(["paid", false]);
    const seen = attemptsSince(start);
    expect(seen.map((a) => a.fate)).toEqual(["connection reset", "connection reset", "answered"]);
    expect(new Set(seen.map((a) => a.requestId)).size).toBe(1);
    expect(charges("acct-reset")).toHaveLength(1);
  });

  it("charges once when the page reloads mid-request and the same cart is paid again", async () => {
    const page = await openCheckout("acct-reload");
    await setNetwork(page, { hold: 1500 });
    const start = checkout.attempts.length;
    await page.getByTestId("pay").click();
    await reloadOnceCharged(page);
    await setNetwork(page, { hold: 0 });
    await page.getByTestId("pay").click();
    const paid = await result(page, "client");
    expect([paid?.kind, paid?.replayed]).toEqual(["paid", true]);
    // The first answer is still held for the page that reloaded away from it.
    await expect.poll(() => attemptsSince(start).length, { timeout: 5_000 }).toBe(2);
    const seen = attemptsSince(start);
    expect(seen[1]?.requestId).toBe(seen[0]?.requestId);
    expect(charges("acct-reload")).toHaveLength(1);
  });

  it("charges twice after a reload without pending request IDs: what the page did before", async () => {
    const page = await openCheckout("acct-no-pending", "&pending=off");
    await setNetwork(page, { hold: 1500 });
    await page.getByTestId("pay").click();
    await reloadOnceCharged(page);
    await setNetwork(page, { hold: 0 });
    await page.getByTestId("pay").click();
    const paid = await result(page, "client");
    expect([paid?.kind, paid?.replayed]).toEqual(["paid", false]);
    expect(charges("acct-no-pending")).toHaveLength(2);
  });

  it("refuses a cart changed after a reload under the pending ID with REQUEST_ID_REUSED, explained", async () => {
    const page = await openCheckout("acct-changed");
    await setNetwork(page, { hold: 1500 });
    await page.getByTestId("pay").click();
    await reloadOnceCharged(page);
    await setNetwork(page, { hold: 0 });
    await page.getByTestId("add-item").click();
    await page.getByTestId("pay").click();
    const failed = await result(page, "client");
    expect(failed?.kind).toBe("failed");
    expect(failed?.text).toContain("REQUEST_ID_REUSED");
    expect(failed?.text).toContain("was first sent with other content");
    expect(charges("acct-changed")).toHaveLength(1);
  });

  it("makes a deliberate second purchase after the first completed with a new ID", async () => {
    const page = await openCheckout("acct-again");
    await page.getByTestId("pay").click();
    const first = await result(page, "client", 1);
    await page.getByTestId("pay").click();
    const second = await result(page, "client", 2);
    expect([first?.replayed, second?.replayed]).toEqual([false, false]);
    expect(second?.requestId).not.toBe(first?.requestId);
    expect(charges("acct-again")).toHaveLength(2);
  });

  it("keeps one request ID through TanStack Query's retries (connect-query useMutation, retry: 3)", async () => {
    const page = await openCheckout("acct-tanstack");
    await setNetwork(page, { drop: 3 });
    await page.getByTestId("pay-tanstack").click();
    const paid = await result(page, "tanstack");
    expect(paid?.kind).toBe("paid");
    const attempts = (await logRows(page)).filter((row) => row.via === "tanstack" && row.kind === "attempt");
    expect(attempts).toHaveLength(4);
    expect(new Set(attempts.map((a) => a.requestId)).size).toBe(1);
    expect(attempts.at(-1)?.replayed).toBe(true);
    expect(charges("acct-tanstack")).toHaveLength(1);
    await page.waitForTimeout(500);
    // Kept with the run's data; `SAVE_DOCS_SCREENSHOT=1` refreshes the one in docs/.
    await page.screenshot({ path: screenshotPath, fullPage: true });
  });

  it("cannot see the replay when CORS does not expose the idempotency headers", async () => {
    const page = await openCheckout("acct-cors");
    await setNetwork(page, { drop: 1, expose: false });
    const start = checkout.attempts.length;
    await page.getByTestId("pay").click();
    const paid = await result(page, "client");
    // The server said replayed; the page could not read it.
    expect(attemptsSince(start).at(-1)?.replayed).toBe(true);
    expect([paid?.kind, paid?.replayed]).toEqual(["paid", false]);
    expect(charges("acct-cors")).toHaveLength(1);
  });
});
