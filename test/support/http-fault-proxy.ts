// A fault-injecting HTTP proxy in front of an S3-compatible server: each request goes
// through `rule` (method and path), which lets it pass or injects a fault: "fail" (an S3
// 503 SlowDown error), "full" (507 with an S3 error body), "stall" (no answer until the
// client gives up) or "reset" (the connection is cut with a TCP RST). Counts requests
// and the faults injected, and the connections open, for leak checks.
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";

export type HttpFault = "pass" | "fail" | "full" | "stall" | "reset";
export type HttpRule = (req: { method: string; path: string }) => HttpFault;

export class HttpFaultProxy {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  rule: HttpRule = () => "pass";
  readonly injected: Record<Exclude<HttpFault, "pass">, number> = { fail: 0, full: 0, stall: 0, reset: 0 };
  requests = 0;

  private constructor(private readonly upstream: URL) {
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on("connection", (s: Socket) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
  }

  static async start(upstream: string): Promise<HttpFaultProxy> {
    const proxy = new HttpFaultProxy(new URL(upstream));
    await new Promise<void>((resolve) => proxy.server.listen(0, "127.0.0.1", () => resolve()));
    return proxy;
  }

  get endpoint(): string {
    const a = this.server.address();
    if (typeof a !== "object" || a === null) throw new Error("proxy not listening");
    return `http://127.0.0.1:${a.port}`;
  }

  get openConnections(): number {
    return this.sockets.size;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests++;
    const fault = this.rule({ method: req.method ?? "GET", path: req.url ?? "/" });
    if (fault !== "pass") this.injected[fault]++;
    if (fault === "stall") {
      req.resume(); // read the body, never answer
      return;
    }
    if (fault === "reset") {
      req.socket.resetAndDestroy();
      return;
    }
    if (fault === "fail" || fault === "full") {
      req.resume();
      const [status, code] = fault === "fail" ? [503, "ServiceUnavailable"] : [507, "QuotaExceeded"];
      const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected</Message></Error>`;
      res.writeHead(status, { "content-type": "application/xml", "content-length": Buffer.byteLength(body) }).end(body);
      return;
    }
    const up = request(
      { host: this.upstream.hostname, port: this.upstream.port, method: req.method, path: req.url, headers: req.headers },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on("error", () => res.destroy());
    req.pipe(up);
  }
}
