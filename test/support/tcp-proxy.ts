// A TCP proxy in front of coordinator replicas, standing in for the Service address
// that workers use in production: each new connection goes to the first upstream (in
// the given order) that accepts it; when either side closes, the other is closed too,
// so a worker whose replica died sees its stream end and reconnects through the proxy
// to a replica that is alive.
import { createServer, Socket, type Server } from "node:net";

export class TcpProxy {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  /** Upstream each accepted connection went to, in order. */
  readonly routed: string[] = [];

  /** Where new connections go, in order of preference (a test may change the list). */
  readonly upstreams: string[];

  private constructor(upstreams: readonly string[]) {
    this.upstreams = [...upstreams];
    this.server = createServer((client) => void this.accept(client));
  }

  static async start(upstreams: readonly string[]): Promise<TcpProxy> {
    const proxy = new TcpProxy(upstreams);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once("error", reject);
      proxy.server.listen(0, "127.0.0.1", () => resolve());
    });
    return proxy;
  }

  get address(): string {
    const a = this.server.address();
    if (typeof a !== "object" || a === null) throw new Error("proxy not listening");
    return `127.0.0.1:${a.port}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async accept(client: Socket): Promise<void> {
    this.track(client);
    client.pause();
    for (const upstream of this.upstreams) {
      const socket = await connect(upstream);
      if (!socket) continue;
      if (client.destroyed) {
        socket.destroy();
        return;
      }
      this.track(socket);
      this.routed.push(upstream);
      client.pipe(socket);
      socket.pipe(client);
      const closeBoth = () => {
        client.destroy();
        socket.destroy();
      };
      client.on("close", closeBoth).on("error", closeBoth);
      socket.on("close", closeBoth).on("error", closeBoth);
      client.resume();
      return;
    }
    client.destroy(); // no replica alive: the worker retries with backoff
  }

  private track(s: Socket): void {
    this.sockets.add(s);
    s.on("close", () => this.sockets.delete(s));
  }
}

function connect(address: string): Promise<Socket | null> {
  const [host, port] = [address.slice(0, address.lastIndexOf(":")), Number(address.slice(address.lastIndexOf(":") + 1))];
  return new Promise((resolve) => {
    const socket = new Socket();
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(null);
    }, 2_000);
    socket.once("error", () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(null);
    });
    socket.connect(port, host, () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
  });
}
