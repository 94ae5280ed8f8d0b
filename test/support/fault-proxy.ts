// A fault-injecting TCP proxy for tests, in front of Redis or an object store: in mode
// "pass" bytes flow both ways; "stall" keeps every connection open but forwards nothing
// (a server that hangs); "drop" refuses new connections and closes open ones (a server
// that is gone); "reset" sends a TCP RST on every open connection, once, then passes
// again. It counts the connections it accepted and holds, so a test can check for leaks.
import { createServer, Socket, type Server } from "node:net";

export type FaultMode = "pass" | "stall" | "drop";

interface Pair {
  client: Socket;
  upstream: Socket;
}

export class FaultProxy {
  private readonly server: Server;
  private readonly pairs = new Set<Pair>();
  private mode: FaultMode = "pass";
  /** Connections accepted since start. */
  accepted = 0;

  private constructor(
    private readonly upstreamHost: string,
    private readonly upstreamPort: number,
  ) {
    this.server = createServer((client) => this.accept(client));
  }

  static async start(upstream: { host?: string; port: number }): Promise<FaultProxy> {
    const proxy = new FaultProxy(upstream.host ?? "127.0.0.1", upstream.port);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once("error", reject);
      proxy.server.listen(0, "127.0.0.1", () => resolve());
    });
    return proxy;
  }

  get port(): number {
    const a = this.server.address();
    if (typeof a !== "object" || a === null) throw new Error("proxy not listening");
    return a.port;
  }

  /** Connections open through the proxy now. */
  get open(): number {
    return this.pairs.size;
  }

  set(mode: FaultMode): void {
    this.mode = mode;
    for (const p of this.pairs) {
      if (mode === "drop") this.close(p);
      else if (mode === "stall") {
        p.client.pause();
        p.upstream.pause();
      } else {
        p.client.resume();
        p.upstream.resume();
      }
    }
  }

  /** RST every open connection (a crashed peer or middlebox); new ones pass. */
  reset(): void {
    for (const p of [...this.pairs]) {
      p.client.resetAndDestroy();
      p.upstream.resetAndDestroy();
      this.pairs.delete(p);
    }
  }

  async close(): Promise<void>;
  close(pair: Pair): void;
  close(pair?: Pair): void | Promise<void> {
    if (pair) {
      pair.client.destroy();
      pair.upstream.destroy();
      this.pairs.delete(pair);
      return;
    }
    for (const p of [...this.pairs]) this.close(p);
    return new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.accepted++;
    if (this.mode === "drop") {
      client.destroy();
      return;
    }
    const upstream = new Socket();
    const pair: Pair = { client, upstream };
    this.pairs.add(pair);
    const end = () => this.close(pair);
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    upstream.connect(this.upstreamPort, this.upstreamHost);
    client.pipe(upstream);
    upstream.pipe(client);
    if (this.mode === "stall") {
      client.pause();
      upstream.pause();
    }
  }
}
