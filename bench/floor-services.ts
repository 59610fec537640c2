import { randomUUID } from "node:crypto";
import { toBinary } from "@bufbuild/protobuf";
import type { MethodImpl } from "@connectrpc/connect";
import {
  type CreatePaymentRequest,
  CreatePaymentResponseSchema,
  type PaymentService,
} from "../gen/demo/v1/payments_pb.js";
import type { BenchService } from "./bench-service.js";
import { type BenchStoreOptions, required } from "./bench-stores.js";
import { createPayment } from "./payment-handler.js";
import { openPostgresFloor } from "./postgres-floor.js";
import type { ServerSetup } from "./scenarios.js";
import { openSqliteFloor } from "./sqlite-floor.js";

type CreatePaymentImpl = MethodImpl<typeof PaymentService.method.createPayment>;

/**
 * The floor scenarios: no interceptor and no store, only the writes any
 * idempotency layer with a durable record makes around the handler (a claim
 * before it, the serialized response after it), as bare statements. Their
 * ratio to a target's reference is the most any implementation reaches on
 * this machine with these writes: a target that even the floor misses is
 * out of reach.
 *
 * - SQLite (`sqlite-normal`): `SqliteFloor`'s claim, the handler, its
 *   completion (`commit`: the payment row and the completion in one job of
 *   the same group-commit transaction).
 * - PostgreSQL with `commit`: `PostgresFloor`'s claim, the handler, then the
 *   payment row and the completion in one transaction.
 */
export async function createFloorService(
  setup: Extract<ServerSetup, { kind: "floor" }>,
  options: BenchStoreOptions,
): Promise<BenchService> {
  if (setup.db === "sqlite-normal") {
    const floor = await openSqliteFloor(required(options.sqlitePath, "sqlitePath"));
    return floorService(
      floor,
      setup.handler === "commit"
        ? (req, owner, outcome) => floor.commitRow(req, owner, outcome)
        : (req, owner, outcome) => floor.complete(req.requestId, owner, outcome),
    );
  }
  if (setup.db === "postgres" && setup.handler === "commit") {
    const floor = await openPostgresFloor(options);
    return floorService(floor, (req, owner, outcome) => floor.commitRow(req, owner, outcome));
  }
  throw new Error(`no floor for ${setup.db}${setup.handler === undefined ? "" : ` with ${setup.handler}`}`);
}

/** What a floor service settles a call with, once the handler answered: its serialized response. */
type SettleFloorCall = (req: CreatePaymentRequest, owner: string, outcome: Uint8Array) => Promise<void>;

/** The handler between the floor's claim of its request ID and `settle`. */
function floorService(
  floor: { claim(key: string, owner: string): Promise<void>; close(): Promise<void> },
  settle: SettleFloorCall,
): BenchService {
  const createPaymentFloor: CreatePaymentImpl = async (req) => {
    const owner = randomUUID();
    await floor.claim(req.requestId, owner);
    const response = createPayment(req);
    await settle(req, owner, toBinary(CreatePaymentResponseSchema, response));
    return response;
  };
  return { createPayment: createPaymentFloor, interceptors: [], close: () => floor.close() };
}
