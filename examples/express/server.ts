import type { AddressInfo } from "node:net";
import { Code, ConnectError, type ConnectRouter, createContextKey, type Interceptor } from "@connectrpc/connect";
import { expressConnectMiddleware } from "@connectrpc/connect-express";
import { createIdempotencyInterceptor, createSqliteStore } from "connect-idempotency";
import express from "express";
import { OrderService } from "./gen/shop/v1/shop_pb.js";

// Your authentication: here the bearer token is the caller's name.
const principal = createContextKey<string | undefined>(undefined);
const auth: Interceptor = (next) => (req) => {
  const caller = req.header.get("authorization")?.replace(/^Bearer /, "");
  if (!caller) throw new ConnectError("no bearer token", Code.Unauthenticated);
  req.contextValues.set(principal, caller);
  return next(req);
};

const idempotency = createIdempotencyInterceptor({
  store: createSqliteStore({ path: "idempotency.db" }),
  // One key space per caller: never derive it from the payload.
  scope: (req) => req.contextValues.get(principal) ?? "",
});

let orders = 0;
function routes(router: ConnectRouter) {
  router.service(OrderService, {
    placeOrder(req) {
      orders += 1;
      console.log(`handler ran: order-${orders} for ${req.sku}`);
      return { orderId: `order-${orders}` };
    },
  });
}

const app = express();
app.use(
  expressConnectMiddleware({
    // connect-node's default (about 4 GiB) lets a small compressed body inflate that far.
    readMaxBytes: 4 * 1024 * 1024,
    // The first interceptor is the outermost: authenticate, then deduplicate.
    interceptors: [auth, idempotency],
    routes,
  }),
);
// Express serves HTTP/1.1: Connect and gRPC-Web, not gRPC (which needs HTTP/2).
const server = app.listen(Number(process.env.PORT ?? 8080), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});
