import { ConnectError, Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  buildDemoReport,
  createDemoCounters,
  type DemoLedger,
  formatDemoReport,
  isExactlyOnce,
} from "../../demo/demo-report.js";
import { createFaultLog, recordFault } from "../../demo/fault-log.js";
import type { PaymentOutcome } from "../../demo/payment-load.js";

const payment = (paymentId: string, seq: number, chargeId: string) => ({
  payment_id: paymentId,
  request_id: `req-${seq}`,
  charge_id: chargeId,
  metadata: JSON.stringify({ demo_seq: String(seq) }),
});
// A charge, referenced by the request of payment number `seq`.
const charge = (chargeId: string, seq: number) => ({ charge_id: chargeId, reference: `req-${seq}` });
const runFacts = { crashes: 1, servers: 2, store: "SQLite", leaseMs: 3000, stallMs: 4000 } as const;
const acknowledged = (seq: number, paymentId: string): PaymentOutcome => ({ seq, kind: "acknowledged", paymentId });

function report(ledger: DemoLedger, outcomes: PaymentOutcome[], asked = outcomes.length) {
  return buildDemoReport({
    ...runFacts,
    faults: createFaultLog(),
    idempotency: true,
    seed: 1,
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
      { payments: [payment("p0", 0, "c0"), payment("p1", 1, "c1")], charges: [charge("c0", 0), charge("c1", 1)] },
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
        charges: [charge("c0", 0), charge("c0b", 0), charge("c1", 1)],
      },
      [acknowledged(0, "p0b"), acknowledged(1, "p1")],
    );
    expect(result).toMatchObject({ duplicates: 1, extraPayments: 1, extraCharges: 1, lost: 0 });
    expect(isExactlyOnce(result)).toBe(false);
  });

  it("counts a second row that reused the first charge as a duplicate payment", () => {
    const result = report({ payments: [payment("p0", 0, "c0"), payment("p0b", 0, "c0")], charges: [charge("c0", 0)] }, [
      acknowledged(0, "p0"),
    ]);
    expect(result).toMatchObject({ duplicates: 1, extraPayments: 1, extraCharges: 0 });
  });

  it("counts a charge no payment refers to as a duplicate", () => {
    const result = report({ payments: [payment("p0", 0, "c0")], charges: [charge("c0", 0), charge("stray", 9)] }, [
      acknowledged(0, "p0"),
    ]);
    expect(result).toMatchObject({ duplicates: 1, extraPayments: 0, extraCharges: 1 });
  });

  it("counts acknowledged but unrecorded, failed, missing and uncharged payments as lost", () => {
    const failed: PaymentOutcome = { seq: 2, kind: "failed", error: new ConnectError("gave up", Code.Unavailable) };
    const result = report(
      { payments: [payment("p0", 0, "c0"), payment("p3", 3, "gone")], charges: [charge("c0", 0)] },
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
    expect(formatDemoReport(result)).toMatch(
      /^ {2}lost +4 +1 acknowledged but not recorded, 2 never completed, 1 recorded but not charged$/m,
    );
  });

  it("says plainly that duplicates without the interceptor are what it prevents", () => {
    const result = buildDemoReport({
      ...{
        ...runFacts,
        faults: createFaultLog(),
        seed: 7,
        crashes: 0,
        durationMs: 1,
        asked: 1,
        counters: createDemoCounters(),
      },
      idempotency: false,
      outcomes: [acknowledged(0, "p0b")],
      ledger: {
        payments: [payment("p0", 0, "c0"), payment("p0b", 0, "c0b")],
        charges: [charge("c0", 0), charge("c0b", 0)],
      },
    });
    const text = formatDemoReport(result);
    expect(text).toContain("Idempotency OFF (--no-idempotency)");
    expect(text).toContain("FAILED: 1 duplicate:");
    expect(text).toContain("This is what the idempotency interceptor prevents");
  });

  it("follows each fault to the payments it hit: exactly once, or duplicated", () => {
    const faults = createFaultLog();
    recordFault(faults, "bank_timeout", ["req-0"]);
    recordFault(faults, "bank_timeout", ["req-1"]);
    recordFault(faults, "stall", ["req-0", "req-1", ""]);
    const result = buildDemoReport({
      ...runFacts,
      faults,
      idempotency: false,
      seed: 1,
      durationMs: 1,
      asked: 2,
      counters: createDemoCounters(),
      // req-1 was charged twice: once before its answer was lost, once by the retry.
      outcomes: [acknowledged(0, "p0"), acknowledged(1, "p1")],
      ledger: {
        payments: [payment("p0", 0, "c0"), payment("p1", 1, "c1b")],
        charges: [charge("c0", 0), charge("c1", 1), charge("c1b", 1)],
      },
    });
    expect(result.faults.find((outcome) => outcome.fault === "bank_timeout")).toEqual({
      fault: "bank_timeout",
      injected: 2,
      hit: 2,
      exactlyOnce: 1,
      duplicated: 1,
    });
    expect(result.faults.find((outcome) => outcome.fault === "stall")).toMatchObject({
      injected: 1,
      hit: 2,
      duplicated: 1,
    });
    const text = formatDemoReport(result);
    expect(text).toMatch(/^ {2}bank timeouts +2 +the bank charged, .*: 2 payments hit, 1 recovered, 1 duplicated$/m);
    expect(text).toMatch(
      /^ {2}store stalls +1 +the payments store locked for 4\.0 s .* longer than the 3\.0 s lease: 2 payments hit, 1 exactly once, 1 duplicated$/m,
    );
  });

  it("names why the calls that never completed failed", () => {
    const failed: PaymentOutcome = {
      seq: 0,
      kind: "failed",
      error: new ConnectError("connect ECONNREFUSED", Code.Unavailable),
    };
    const text = formatDemoReport(report({ payments: [], charges: [] }, [failed, { ...failed, seq: 1 }]));
    expect(text).toContain("    2 calls failed with: [unavailable] connect ECONNREFUSED");
  });
});
