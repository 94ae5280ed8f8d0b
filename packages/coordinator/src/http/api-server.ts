// The coordinator's HTTP server: the OpenAI-compatible Files and Batches API under /v1
// (Bearer API keys -> tenants), plus /metrics (optionally behind a key), /healthz (the
// process is alive) and /readyz (Redis and the store answer, Redis kept its state). Every error leaves as an
// OpenAI error body; nothing unexpected reaches a client beyond "internal server error".
//
// Bounds on every request: a declared Content-Length over the route's limit is answered
// 413 before a byte is read; a request must arrive whole within requestTimeoutMs and its
// connection may not go quiet for idleTimeoutMs (408 either way, then the connection is
// closed, which ends any upload in flight and removes its temp file). An error answered
// before the request was read whole closes the connection instead of reading the rest.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { BatchgenError, SecretSet, httpStatusOf, toBatchgenError, type Logger, type Readiness } from "@batchgen/core";
import type { Counter, Registry } from "prom-client";
import type { TenantAuth } from "../tenant-auth.js";
import type { BatchesApi } from "./batches-api.js";
import { isConsolePath, serveConsole } from "./console-routes.js";
import type { FleetApi } from "./fleet-api.js";
import { FORM_OVERHEAD_BYTES, type FilesApi } from "./files-api.js";
import { readJson, sendError } from "./http-io.js";

export interface ApiServerDeps {
  auth: TenantAuth;
  files: FilesApi;
  batches: BatchesApi;
  fleet: FleetApi;
  registry: Registry;
  /** Keys GET /metrics requires; empty: open. */
  metricsKeys: readonly string[];
  ready(): Promise<Readiness>;
  logger: Logger;
  maxFileBytes: number;
  requestTimeoutMs: number;
  idleTimeoutMs: number;
  /** Error responses by status. */
  rejected: Counter<"status">;
}

type Handler = (req: IncomingMessage, res: ServerResponse, tenant: string, params: string[], query: URLSearchParams) => Promise<void>;

interface Route {
  method: string;
  pattern: RegExp;
  /** Largest body the route reads (a larger declared Content-Length: 413 at once). */
  maxBody: number;
  /** false: no API key needed (/healthz, /metrics). */
  auth: boolean;
  handler: Handler;
}

const JSON_LIMIT = 1024 * 1024;
/** Routes that read no body still take a small one (never read) rather than refuse it. */
const NO_BODY_LIMIT = 64 * 1024;

/** Node's parser errors before any handler runs, as the answer they deserve. */
function clientErrorAnswer(code: string | undefined): [status: number, reason: string, apiCode: string, message: string] {
  if (code === "HPE_HEADER_OVERFLOW") return [431, "Request Header Fields Too Large", "invalid_request", "The request headers are too large."];
  if (code === "ERR_HTTP_REQUEST_TIMEOUT") return [408, "Request Timeout", "request_timeout", "The request headers did not arrive in time."];
  return [400, "Bad Request", "invalid_request", "The request could not be parsed as HTTP."];
}

export class ApiServer {
  private readonly server: Server;
  private readonly routes: Route[];
  /** The request being served on each connection (for the idle timeout's answer). */
  private readonly current = new WeakMap<Socket, { req: IncomingMessage; res: ServerResponse }>();
  private readonly metricsKeys: SecretSet;

  constructor(private readonly deps: ApiServerDeps) {
    this.metricsKeys = new SecretSet(deps.metricsKeys);
    const { files, batches, fleet } = deps;
    const id = "([A-Za-z0-9_-]+)";
    const upload = deps.maxFileBytes + FORM_OVERHEAD_BYTES;
    const route = (method: string, pattern: RegExp, handler: Handler, maxBody = NO_BODY_LIMIT, auth = true): Route => ({
      method,
      pattern,
      handler,
      maxBody,
      auth,
    });
    this.routes = [
      route("GET", /^\/healthz$/, async (_q, res) => void res.writeHead(200, { "content-type": "text/plain" }).end("ok\n"), NO_BODY_LIMIT, false),
      route(
        "GET",
        /^\/readyz$/,
        async (_q, res) => {
          const r = await deps.ready();
          if (r.ready) res.writeHead(200, { "content-type": "text/plain" }).end("ready\n");
          else res.writeHead(503, { "content-type": "text/plain" }).end(`not ready: ${r.reason}\n`);
        },
        NO_BODY_LIMIT,
        false,
      ),
      route(
        "GET",
        /^\/metrics$/,
        async (req, res) => {
          if (this.metricsKeys.size > 0 && !this.metricsKeys.hasBearer(req.headers.authorization)) {
            throw new BatchgenError("unauthenticated", "GET /metrics needs a metrics key (Authorization: Bearer <key>).", {
              reason: "invalid_metrics_key",
            });
          }
          const text = await deps.registry.metrics();
          res.writeHead(200, { "content-type": deps.registry.contentType }).end(text);
        },
        NO_BODY_LIMIT,
        false,
      ),
      route("POST", /^\/v1\/files$/, (req, res, t) => files.create(req, res, t), upload),
      route("GET", /^\/v1\/files$/, (_q, res, t, _p, query) => files.list(res, t, query)),
      route("GET", new RegExp(`^/v1/files/${id}$`), (_q, res, t, [fid]) => files.retrieve(res, t, fid!)),
      route("DELETE", new RegExp(`^/v1/files/${id}$`), (_q, res, t, [fid]) => files.delete(res, t, fid!)),
      route("GET", new RegExp(`^/v1/files/${id}/content$`), (_q, res, t, [fid]) => files.content(res, t, fid!)),
      route("POST", /^\/v1\/batches$/, async (req, res, t) => batches.create(res, t, await readJson(req, JSON_LIMIT)), JSON_LIMIT),
      route("GET", /^\/v1\/batches$/, (_q, res, t, _p, query) => batches.list(res, t, query)),
      route("GET", new RegExp(`^/v1/batches/${id}$`), (_q, res, t, [bid]) => batches.retrieve(res, t, bid!)),
      route("POST", new RegExp(`^/v1/batches/${id}/cancel$`), (_q, res, t, [bid]) => batches.cancel(res, t, bid!), JSON_LIMIT),
      route("GET", /^\/v1\/fleet$/, (_q, res) => fleet.list(res)),
    ];
    this.server = createServer((req, res) => void this.handle(req, res));
    // Node's own request timeout answers 408 without a JSON body: the deadline is kept here instead.
    this.server.requestTimeout = 0;
    this.server.timeout = deps.idleTimeoutMs;
    this.server.on("timeout", (socket: Socket) => this.onIdle(socket));
    // A malformed request line or header: Node's parser gives up before any handler runs.
    this.server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
      if (err.code === "ECONNRESET" || !socket.writable) {
        socket.destroy();
        return;
      }
      const [status, reason, code, message] = clientErrorAnswer(err.code);
      const body = JSON.stringify({ error: { message, type: "invalid_request_error", param: null, code } });
      const head = `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}`;
      socket.end(`${head}\r\nconnection: close\r\n\r\n${body}`);
      this.deps.rejected.inc({ status: String(status) });
    });
  }

  async listen(host: string, port: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** The connection went quiet: a request still arriving is answered 408; then the connection closes. */
  private onIdle(socket: Socket): void {
    const served = this.current.get(socket);
    if (served && !served.req.complete) {
      this.timeOut(served.req, served.res, `No data arrived for ${this.deps.idleTimeoutMs} ms; the request was dropped.`);
    } else {
      socket.destroy();
    }
  }

  private timeOut(req: IncomingMessage, res: ServerResponse, message: string): void {
    if (res.headersSent) {
      req.socket.destroy();
      return;
    }
    this.answerError(req, res, new BatchgenError("request_timeout", message));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.current.set(req.socket, { req, res });
    const deadline = setTimeout(() => {
      if (!req.complete) this.timeOut(req, res, `The request did not arrive within ${this.deps.requestTimeoutMs} ms.`);
    }, this.deps.requestTimeoutMs);
    deadline.unref();
    res.once("close", () => {
      clearTimeout(deadline);
      if (this.current.get(req.socket)?.req === req) this.current.delete(req.socket);
    });
    let path = "/";
    try {
      const url = new URL(req.url ?? "/", "http://localhost");
      path = url.pathname.replace(/\/+$/, "") || "/";
      if (req.method === "GET" && isConsolePath(path) && (await serveConsole(path, res))) return;
      const allowed: string[] = [];
      for (const route of this.routes) {
        const m = route.pattern.exec(path);
        if (!m) continue;
        if (route.method !== req.method) {
          allowed.push(route.method);
          continue;
        }
        this.checkLength(req, route.maxBody);
        const tenant = route.auth ? this.deps.auth.tenantOf(req.headers.authorization) : "";
        await route.handler(req, res, tenant, m.slice(1), url.searchParams);
        return;
      }
      if (allowed.length > 0) {
        allowed.sort();
        res.setHeader("allow", allowed.join(", "));
        throw new BatchgenError("method_not_allowed", `Method ${req.method} is not allowed on ${path}; use ${allowed.join(" or ")}.`);
      }
      throw new BatchgenError("not_found", `Unknown request URL: ${req.method} ${path}.`);
    } catch (err) {
      const e = toBatchgenError(err);
      if (e.code === "internal" || e.code === "unavailable") {
        this.deps.logger.error("request failed", { method: req.method, path, err });
      }
      this.answerError(req, res, e);
    }
  }

  /** A declared body longer than the route reads is refused before any of it is read. */
  private checkLength(req: IncomingMessage, maxBody: number): void {
    const declared = req.headers["content-length"];
    if (declared === undefined) return;
    const n = Number(declared);
    if (Number.isSafeInteger(n) && n > maxBody) {
      throw new BatchgenError(
        "payload_too_large",
        `The request body (${n} bytes declared) exceeds the limit of ${maxBody} bytes for ${req.method} ${req.url?.split("?")[0] ?? ""}.`,
      );
    }
  }

  private answerError(req: IncomingMessage, res: ServerResponse, err: BatchgenError): void {
    if (!res.headersSent) this.deps.rejected.inc({ status: String(httpStatusOf(err.code)) });
    // A store or Redis fault (503, 507) is no fault of the request, whose length the route's
    // limit bounded already: its rest is read and dropped so that the client, still sending,
    // reads the answer. Other unread request bytes (a refused upload) are not read to their
    // end: the connection closes.
    const drain = err.code === "insufficient_storage" || err.code === "unavailable";
    if (!req.complete && !res.headersSent && !drain) res.setHeader("connection", "close");
    sendError(res, err);
    if (req.complete) return;
    if (drain) req.resume();
    else res.once("finish", () => req.socket.destroySoon());
  }
}
