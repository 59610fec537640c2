import { randomUUID } from "node:crypto";
import { createConnectTransport } from "@connectrpc/connect-node";
import { createOrderServiceClient } from "./gen/shop/v1/shop_idempotency.js";

const transport = createConnectTransport({
  baseUrl: process.env.SERVER_URL ?? "http://127.0.0.1:8080",
  httpVersion: "2", // http2.createServer speaks HTTP/2 only
  interceptors: [
    (next) => (req) => {
      req.header.set("authorization", "Bearer alice");
      return next(req);
    },
  ],
});
const client = createOrderServiceClient(transport);

// The client fills in request_id, and keeps it across its retries.
const { orderId } = await client.placeOrder({ sku: "book-42" });
console.log(`placed ${orderId}`);

// The same request ID twice, as after a lost response: the second is replayed.
const requestId = randomUUID();
for (const attempt of [1, 2]) {
  let replayed = "false";
  const res = await client.placeOrder(
    { requestId, sku: "pen-7" },
    { onHeader: (h) => (replayed = h.get("idempotency-replayed") ?? "false") },
  );
  console.log(`attempt ${attempt}: ${res.orderId}, replayed ${replayed}`);
}
