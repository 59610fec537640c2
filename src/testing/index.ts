// `connect-idempotency/testing`: an unreliable network for tests of clients
// and servers, as connect exports `createRouterTransport` for its tests.

export {
  createHostileInterceptor,
  createHostileTransport,
  type HostileFault,
  type HostileNetworkOptions,
} from "./hostile-transport.js";
export { createSeededRandom } from "./seeded-random.js";
