import { fromJson, type JsonObject, type JsonValue, toJson } from "@bufbuild/protobuf";
import { Idempotency, type IdempotencyParams } from "@node-idempotency/core";
import { RedisStorageAdapter } from "@node-idempotency/storage-adapter-redis";
import {
  CreatePaymentRequestSchema,
  CreatePaymentResponseSchema,
  PaymentService,
} from "../../gen/demo/v1/payments_pb.js";
import type { BenchService } from "../bench-service.js";
import { createPayment } from "../payment-handler.js";
import { benchRedisUrl, deleteRedisKeys } from "../redis-keys.js";

const cacheKeyPrefix = "connect-idempotency-bench:node-idempotency";

/**
 * The handler behind `@node-idempotency/core` on its Redis storage adapter,
 * used as its README shows: `onRequest` before the handler (a stored response
 * comes back instead of running it), `onResponse` after. The request ID goes
 * in as the Idempotency-Key header and the request's JSON as the body, which
 * the library fingerprints.
 */
export async function createNodeIdempotencyService(): Promise<BenchService> {
  await deleteRedisKeys(cacheKeyPrefix);
  const storage = new RedisStorageAdapter({ url: benchRedisUrl });
  await storage.connect();
  const idempotency = new Idempotency(storage, { cacheKeyPrefix });
  return {
    async createPayment(req) {
      const params: IdempotencyParams = {
        method: "POST",
        path: `/${PaymentService.typeName}/CreatePayment`,
        headers: { "idempotency-key": req.requestId },
        body: toJson(CreatePaymentRequestSchema, req) as JsonObject,
      };
      const stored = await idempotency.onRequest<JsonValue, unknown>(params);
      if (stored?.body !== undefined) {
        return fromJson(CreatePaymentResponseSchema, stored.body);
      }
      const res = createPayment(req);
      await idempotency.onResponse(params, { body: toJson(CreatePaymentResponseSchema, res) });
      return res;
    },
    interceptors: [],
    async close() {
      await storage.disconnect();
      await deleteRedisKeys(cacheKeyPrefix);
    },
  };
}
