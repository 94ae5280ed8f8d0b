// The coordinator's HTTP server: the OpenAI-compatible Files and Batches API under /v1
// (Bearer API keys -> tenants), plus /metrics (optionally behind a key), /healthz (the
// process is alive) and /readyz (Redis and the store answer, Redis kept its state). Every error leaves as an
// OpenAI error body; nothing unexpected reaches a client beyond "internal server error".
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { BatchgenError, SecretSet, toBatchgenError, type Logger, type Readiness } from "@batchgen/core";
import type { Registry } from "prom-client";
import type { TenantAuth } from "../tenant-auth.js";
import type { BatchesApi } from "./batches-api.js";
import type { FilesApi } from "./files-api.js";
import { readJson, sendError } from "./http-io.js";

export interface ApiServerDeps {
  auth: TenantAuth;
  files: FilesApi;
  batches: BatchesApi;
  registry: Registry;
  /** Keys GET /metrics requires; empty: open. */
  metricsKeys: readonly string[];
  ready(): Promise<Readiness>;
  logger: Logger;
}

type Handler = (req: IncomingMessage, res: ServerResponse, tenant: string, params: string[], query: URLSearchParams) => Promise<void>;

const JSON_LIMIT = 1024 * 1024;

export class ApiServer {
  private readonly server: Server;
  private readonly routes: Array<{ method: string; pattern: RegExp; handler: Handler }>;
  private readonly metricsKeys: SecretSet;

  constructor(private readonly deps: ApiServerDeps) {
    this.metricsKeys = new SecretSet(deps.metricsKeys);
    const { files, batches } = deps;
    const id = "([A-Za-z0-9_-]+)";
    this.routes = [
      { method: "POST", pattern: /^\/v1\/files$/, handler: (req, res, t) => files.create(req, res, t) },
      { method: "GET", pattern: new RegExp(`^/v1/files/${id}$`), handler: (_q, res, t, [fid]) => files.retrieve(res, t, fid!) },
      { method: "GET", pattern: new RegExp(`^/v1/files/${id}/content$`), handler: (_q, res, t, [fid]) => files.content(res, t, fid!) },
      {
        method: "POST",
        pattern: /^\/v1\/batches$/,
        handler: async (req, res, t) => batches.create(res, t, await readJson(req, JSON_LIMIT)),
      },
      { method: "GET", pattern: /^\/v1\/batches$/, handler: (_q, res, t, _p, query) => batches.list(res, t, query) },
      { method: "GET", pattern: new RegExp(`^/v1/batches/${id}$`), handler: (_q, res, t, [bid]) => batches.retrieve(res, t, bid!) },
      {
        method: "POST",
        pattern: new RegExp(`^/v1/batches/${id}/cancel$`),
        handler: (_q, res, t, [bid]) => batches.cancel(res, t, bid!),
      },
    ];
    this.server = createServer((req, res) => void this.handle(req, res));
    // Uploads can be large and slow; rely on the client to finish or abort.
    this.server.requestTimeout = 0;
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

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname.replace(/\/+$/, "") || "/";
    try {
      if (req.method === "GET" && path === "/healthz") {
        res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
        return;
      }
      if (req.method === "GET" && path === "/readyz") {
        const r = await this.deps.ready();
        if (r.ready) res.writeHead(200, { "content-type": "text/plain" }).end("ready\n");
        else res.writeHead(503, { "content-type": "text/plain" }).end(`not ready: ${r.reason}\n`);
        return;
      }
      if (req.method === "GET" && path === "/metrics") {
        if (this.metricsKeys.size > 0 && !this.metricsKeys.hasBearer(req.headers.authorization)) {
          throw new BatchgenError("unauthenticated", "GET /metrics needs a metrics key (Authorization: Bearer <key>).", {
            reason: "invalid_metrics_key",
          });
        }
        const text = await this.deps.registry.metrics();
        res.writeHead(200, { "content-type": this.deps.registry.contentType }).end(text);
        return;
      }
      let methodMismatch = false;
      for (const route of this.routes) {
        const m = route.pattern.exec(path);
        if (!m) continue;
        if (route.method !== req.method) {
          methodMismatch = true;
          continue;
        }
        const tenant = this.deps.auth.tenantOf(req.headers.authorization);
        await route.handler(req, res, tenant, m.slice(1), url.searchParams);
        return;
      }
      if (methodMismatch) throw new BatchgenError("invalid_request", `Method ${req.method} is not allowed on ${path}.`);
      throw new BatchgenError("not_found", `Unknown request URL: ${req.method} ${path}.`);
    } catch (err) {
      const e = toBatchgenError(err);
      if (e.code === "internal" || e.code === "unavailable") {
        this.deps.logger.error("request failed", { method: req.method, path, err });
      }
      sendError(res, e);
      // Unread request bytes (a rejected upload) must not keep the connection hanging.
      if (!req.complete) req.resume();
    }
  }
}

