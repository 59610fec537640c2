import { createConnection, createServer, type Socket } from "node:net";

/**
 * A TCP proxy on loopback that can cut one process off its database, as a
 * network partition does, while other processes still reach it. From
 * `startCutProxy`.
 */
export interface CutProxy {
  /** The port to connect to instead of the target's. */
  readonly port: number;
  /**
   * Cuts: ends every forwarded connection at once, and from now on accepts
   * new connections but never forwards a byte (a black hole: the client
   * waits for its connect timeout).
   */
  cut(): void;
  /** Heals: drops the held connections; new ones are forwarded again. */
  heal(): void;
  /**
   * Loses answers: for `ms`, forwards what clients send but drops what the
   * target answers, then ends every forwarded connection. A write sent in
   * that window is done by the database, but its client never learns it
   * (a lost acknowledgement).
   */
  loseAnswers(ms: number): Promise<void>;
  close(): Promise<void>;
}

/** Starts a proxy on 127.0.0.1 (ephemeral port) to `targetPort` on 127.0.0.1. */
export async function startCutProxy(targetPort: number): Promise<CutProxy> {
  let cut = false;
  let losing = false;
  const forwarded = new Set<Socket>();
  const held = new Set<Socket>();
  const server = createServer((socket) => {
    socket.on("error", () => {});
    if (cut) {
      held.add(socket);
      socket.once("close", () => held.delete(socket));
      return;
    }
    const upstream = createConnection({ host: "127.0.0.1", port: targetPort });
    upstream.on("error", () => socket.destroy());
    socket.on("error", () => upstream.destroy());
    for (const s of [socket, upstream]) {
      forwarded.add(s);
      s.once("close", () => {
        forwarded.delete(s);
        socket.destroy();
        upstream.destroy();
      });
    }
    socket.pipe(upstream);
    upstream.on("data", (chunk: Buffer) => {
      if (!losing) {
        socket.write(chunk);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") {
    throw new Error("the proxy has no port");
  }
  return {
    port: address.port,
    cut() {
      cut = true;
      for (const socket of forwarded) {
        socket.destroy();
      }
    },
    async loseAnswers(ms) {
      losing = true;
      await new Promise((resolve) => setTimeout(resolve, ms));
      for (const socket of forwarded) {
        socket.destroy();
      }
      losing = false;
    },
    heal() {
      cut = false;
      for (const socket of held) {
        socket.destroy();
      }
    },
    async close() {
      for (const socket of [...forwarded, ...held]) {
        socket.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
