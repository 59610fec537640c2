import { fromJson, type JsonObject, toJson } from "@bufbuild/protobuf";
import { IdempotencyConfig, makeIdempotent } from "@aws-lambda-powertools/idempotency";
import { CachePersistenceLayer } from "@aws-lambda-powertools/idempotency/cache";
import { createClient } from "@redis/client";
import {
  type CreatePaymentRequest,
  CreatePaymentRequestSchema,
  CreatePaymentResponseSchema,
} from "../../gen/demo/v1/payments_pb.js";
import type { BenchService } from "../bench-service.js";
import { createPayment } from "../payment-handler.js";
import { benchRedisUrl, deleteRedisKeys } from "../redis-keys.js";

const keyPrefix = "connect-idempotency-bench:powertools";

/**
 * The handler made idempotent the way the AWS Lambda Powertools documentation
 * shows for a plain function: `makeIdempotent` with a `CachePersistenceLayer`
 * on a connected `@redis/client`, the key taken from `requestId`.
 *
 * Payload validation (`payloadValidationJmesPath`, the counterpart of our
 * request fingerprint) stays off: in 2.35 the cache layer drops the payload
 * hash when it completes a record, so every duplicate would fail validation.
 */
export async function createPowertoolsService(): Promise<BenchService> {
  await deleteRedisKeys(keyPrefix);
  const client = await createClient({ url: benchRedisUrl }).connect();
  const persistenceStore = new CachePersistenceLayer({ client });
  const config = new IdempotencyConfig({ eventKeyJmesPath: "requestId" });
  // Outside Lambda there is no invocation deadline; this stands in for one,
  // like the interceptor's lease: an in-progress record older than 30 s may be
  // taken over. Without it Powertools logs a warning on every call.
  config.registerLambdaContext({ getRemainingTimeInMillis: () => 30_000 });
  // Powertools hashes and stores JSON, so the idempotent function takes the
  // request's JSON form (hashed) next to the message itself (used).
  const idempotentCreate = makeIdempotent(
    async (_json: JsonObject, req: CreatePaymentRequest) => toJson(CreatePaymentResponseSchema, createPayment(req)),
    { persistenceStore, config, keyPrefix },
  );
  return {
    async createPayment(req) {
      const json = toJson(CreatePaymentRequestSchema, req) as JsonObject;
      return fromJson(CreatePaymentResponseSchema, await idempotentCreate(json, req));
    },
    interceptors: [],
    async close() {
      client.destroy();
      await deleteRedisKeys(keyPrefix);
    },
  };
}
