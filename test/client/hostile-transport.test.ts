import { Code, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { PaymentService } from "../../gen/demo/v1/payments_pb.js";
import {
  type HostileFault,
  type HostileNetworkOptions,
  createHostileInterceptor,
  createHostileTransport,
} from "../../src/testing/hostile-transport.js";
import { createSeededRandom } from "../../src/testing/seeded-random.js";
import { scriptedRandom } from "../support/attempt-recorder.js";
import { expectConnectError } from "../support/connect-assertions.js";

/** A PaymentService client over an in-memory Connect transport behind the hostile network. */
function setup(network: HostileNetworkOptions) {
  const state = { executions: 0, faults: [] as HostileFault[], waits: [] as number[] };
  const inner = createRouterTransport(({ service }) => {
    service(PaymentService, {
      createPayment() {
        state.executions++;
        return { payment: { paymentId: `pay_${state.executions}` } };
      },
    });
  });
  const transport = createHostileTransport(inner, {
    sleep: async (ms) => {
      state.waits.push(ms);
    },
    onFault: (fault) => state.faults.push(fault),
    ...network,
  });
  return { client: createClient(PaymentService, transport), state };
}

describe("createHostileTransport", () => {
  it("drops the response after the server ran the call: Unavailable", async () => {
    const { client, state } = setup({ dropRate: 0.5, random: scriptedRandom(0.1) });
    const error = await expectConnectError(client.createPayment({}));
    expect(error.code).toBe(Code.Unavailable);
    expect(state).toMatchObject({ executions: 1, faults: ["drop"] });
  });

  it("resets the connection before the server sees the request, or after it ran the call", async () => {
    const before = setup({ resetRate: 0.5, random: scriptedRandom(0.1, 0.2) });
    const early = await expectConnectError(before.client.createPayment({}));
    expect(early.code).toBe(Code.Aborted);
    expect((early.cause as { code?: string }).code).toBe("ECONNRESET");
    expect(before.state).toMatchObject({ executions: 0, faults: ["reset-before"] });

    const after = setup({ resetRate: 0.5, random: scriptedRandom(0.1, 0.7) });
    const late = await expectConnectError(after.client.createPayment({}));
    expect(late.code).toBe(Code.Aborted);
    expect(after.state).toMatchObject({ executions: 1, faults: ["reset-after"] });
  });

  it("delays the response, and times the call out when its timeout is shorter", async () => {
    const slow = setup({ delayRate: 0.5, delayMs: 2_000, random: scriptedRandom(0.1) });
    const response = await slow.client.createPayment({});
    expect(response.payment?.paymentId).toBe("pay_1");
    expect(slow.state.waits).toEqual([2_000]);

    const late = setup({ delayRate: 0.5, delayMs: 2_000, random: scriptedRandom(0.1) });
    const error = await expectConnectError(late.client.createPayment({}, { timeoutMs: 300 }));
    expect(error.code).toBe(Code.DeadlineExceeded);
    expect(late.state).toMatchObject({ executions: 1, waits: [300] });
  });

  it("injects faults at the given rates, the same ones for the same seed", async () => {
    const run = async () => {
      const { client, state } = setup({ dropRate: 0.2, resetRate: 0.1, delayRate: 0.1, random: createSeededRandom(7) });
      for (let i = 0; i < 1_000; i++) {
        await client.createPayment({}).catch(() => undefined);
      }
      return state.faults;
    };
    const faults = await run();
    const count = (kind: HostileFault) => faults.filter((f) => f === kind).length;
    expect(count("drop")).toBeGreaterThan(150);
    expect(count("drop")).toBeLessThan(250);
    expect(count("reset-before") + count("reset-after")).toBeGreaterThan(60);
    expect(count("reset-before") + count("reset-after")).toBeLessThan(140);
    expect(count("delay")).toBeGreaterThan(60);
    expect(count("delay")).toBeLessThan(140);
    expect(await run()).toEqual(faults);
  });
});

describe("createHostileInterceptor", () => {
  it("ends a delay when the call's deadline aborts its signal", async () => {
    let executions = 0;
    const transport = createRouterTransport(
      ({ service }) => {
        service(PaymentService, {
          createPayment() {
            executions++;
            return {};
          },
        });
      },
      {
        transport: {
          interceptors: [
            createHostileInterceptor({
              delayRate: 1,
              delayMs: 60_000,
              sleep: (_ms, signal) =>
                new Promise((_resolve, reject) =>
                  signal?.addEventListener("abort", () => reject(signal.reason), { once: true }),
                ),
            }),
          ],
        },
      },
    );
    const error = await expectConnectError(
      createClient(PaymentService, transport).createPayment({}, { timeoutMs: 50 }),
    );
    expect(error.code).toBe(Code.DeadlineExceeded);
    expect(executions).toBe(1);
  });
});
