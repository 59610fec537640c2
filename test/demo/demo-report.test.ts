import { ConnectError, Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  buildDemoReport,
  createDemoCounters,
  type DemoLedger,
  formatDemoReport,
  isExactlyOnce,
} from "../../demo/demo-report.js";
import type { PaymentOutcome } from "../../demo/payment-load.js";

const payment = (paymentId: string, seq: number, chargeId: string) => ({
  payment_id: paymentId,
  charge_id: chargeId,
  metadata: JSON.stringify({ demo_seq: String(seq) }),
});
const acknowledged = (seq: number, paymentId: string): PaymentOutcome => ({ seq, kind: "acknowledged", paymentId });

function report(ledger: DemoLedger, outcomes: PaymentOutcome[], asked = outcomes.length) {
  return buildDemoReport({
    idempotency: true,
    seed: 1,
    crashes: 1,
    durationMs: 1000,
    asked,
    outcomes,
    counters: createDemoCounters(),
    ledger,
  });
}

describe("demo report", () => {
  it("passes when every request is recorded and charged once", () => {
    const result = report(
      { payments: [payment("p0", 0, "c0"), payment("p1", 1, "c1")], charges: [{ charge_id: "c0" }, { charge_id: "c1" }] },
      [acknowledged(0, "p0"), acknowledged(1, "p1")],
    );
    expect(result).toMatchObject({ paymentsRecorded: 2, chargesAtBank: 2, duplicates: 0, lost: 0 });
    expect(isExactlyOnce(result)).toBe(true);
    expect(formatDemoReport(result)).toContain("OK: every payment was recorded and charged exactly once");
  });

  it("counts a request recorded and charged twice as one duplicate", () => {
    const result = report(
      {
        payments: [payment("p0", 0, "c0"), payment("p0b", 0, "c0b"), payment("p1", 1, "c1")],
        charges: [{ charge_id: "c0" }, { charge_id: "c0b" }, { charge_id: "c1" }],
      },
      [acknowledged(0, "p0b"), acknowledged(1, "p1")],
    );
    expect(result).toMatchObject({ duplicates: 1, extraPayments: 1, extraCharges: 1, lost: 0 });
    expect(isExactlyOnce(result)).toBe(false);
  });

  it("counts a second row that reused the first charge as a duplicate payment", () => {
    const result = report(
      { payments: [payment("p0", 0, "c0"), payment("p0b", 0, "c0")], charges: [{ charge_id: "c0" }] },
      [acknowledged(0, "p0")],
    );
    expect(result).toMatchObject({ duplicates: 1, extraPayments: 1, extraCharges: 0 });
  });

  it("counts a charge no payment refers to as a duplicate", () => {
    const result = report(
      { payments: [payment("p0", 0, "c0")], charges: [{ charge_id: "c0" }, { charge_id: "stray" }] },
      [acknowledged(0, "p0")],
    );
    expect(result).toMatchObject({ duplicates: 1, extraPayments: 0, extraCharges: 1 });
  });

  it("counts acknowledged but unrecorded, failed, missing and uncharged payments as lost", () => {
    const failed: PaymentOutcome = { seq: 2, kind: "failed", error: new ConnectError("gave up", Code.Unavailable) };
    const result = report(
      { payments: [payment("p0", 0, "c0"), payment("p3", 3, "gone")], charges: [{ charge_id: "c0" }] },
      [acknowledged(0, "p0"), acknowledged(1, "p1"), failed, acknowledged(3, "p3")],
      5,
    );
    expect(result).toMatchObject({
      acknowledgedNotRecorded: 1,
      neverCompleted: 2,
      recordedNotCharged: 1,
      lost: 4,
      duplicates: 0,
    });
    expect(formatDemoReport(result)).toMatch(/^ {2}lost +4 +1 acknowledged but not recorded, 2 never completed, 1 recorded but not charged$/m);
  });

  it("says plainly that duplicates without the interceptor are what it prevents", () => {
    const result = buildDemoReport({
      ...{ seed: 7, crashes: 0, durationMs: 1, asked: 1, counters: createDemoCounters() },
      idempotency: false,
      outcomes: [acknowledged(0, "p0b")],
      ledger: { payments: [payment("p0", 0, "c0"), payment("p0b", 0, "c0b")], charges: [{ charge_id: "c0" }, { charge_id: "c0b" }] },
    });
    const text = formatDemoReport(result);
    expect(text).toContain("Idempotency OFF (--no-idempotency)");
    expect(text).toContain("FAILED: 1 duplicate:");
    expect(text).toContain("This is what the idempotency interceptor prevents");
  });
});
