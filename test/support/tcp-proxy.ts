import { createServer, type Server, type Socket, connect } from "node:net";

/** A TCP proxy in front of a server, that can lose the server's answers. */
export interface TcpProxy {
  /** The port the proxy listens on, on 127.0.0.1. */
  readonly port: number;
  /**
   * While true, what the server sends is dropped instead of forwarded: the
   * server has done the work and answered, and the client never hears it.
   */
  swallowAnswers: boolean;
  /** Cuts every connection open now, as a failed network path would. */
  cutConnections(): void;
  /** Cuts every connection and stops listening. */
  close(): Promise<void>;
}

/** Starts a proxy on a free loopback port that forwards to `target`. */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const open = new Set<Socket>();
  const proxy: TcpProxy = {
    port: 0,
    swallowAnswers: false,
    cutConnections() {
      for (const socket of open) socket.destroy();
      open.clear();
    },
    async close() {
      proxy.cutConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    open.add(client);
    open.add(upstream);
    client.on("data", (chunk) => upstream.write(chunk));
    upstream.on("data", (chunk) => {
      if (!proxy.swallowAnswers) client.write(chunk);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on("close", end);
    upstream.on("close", end);
    client.on("error", end);
    upstream.on("error", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the proxy has no port");
  (proxy as { port: number }).port = address.port;
  return proxy;
}
