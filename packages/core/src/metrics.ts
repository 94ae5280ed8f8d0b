// Prometheus helpers: one registry per process role and a small /metrics server.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { collectDefaultMetrics, Registry } from "prom-client";
import { SecretSet } from "./secret-set.js";

/** A registry with the default process metrics, their names prefixed by `prefix` (e.g. "batchgen_worker_"). */
export function createRegistry(prefix?: string): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, ...(prefix ? { prefix } : {}) });
  return registry;
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/** What /readyz reports: ready, or why not. */
export type Readiness = { ready: true } | { ready: false; reason: string };

export interface MetricsServerOptions {
  port: number;
  /** Bind address; default loopback. */
  host?: string;
  /** Keys GET /metrics requires as `Authorization: Bearer <key>`; none: open. */
  keys?: readonly string[];
  /** Answers GET /readyz (200 or 503 with the reason); without it /readyz is /healthz. */
  ready?: () => Promise<Readiness>;
}

/** How long /readyz waits for its check before answering 503. */
const READY_TIMEOUT_MS = 2_000;

/**
 * Serves GET /metrics (the registry), GET /healthz ("ok": the process is alive) and
 * GET /readyz (opts.ready); port 0 picks a free port.
 */
export async function serveMetrics(registry: Registry, opts: MetricsServerOptions): Promise<MetricsServer> {
  const keys = new SecretSet(opts.keys ?? []);
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      return;
    }
    if (path === "/readyz") {
      void readiness(opts.ready).then((r) =>
        res.writeHead(r.ready ? 200 : 503, { "content-type": "text/plain" }).end(r.ready ? "ready\n" : `not ready: ${r.reason}\n`),
      );
      return;
    }
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    if (keys.size > 0 && !keys.hasBearer(req.headers.authorization)) {
      res.writeHead(401, { "content-type": "text/plain", "www-authenticate": "Bearer" }).end("a metrics key is required\n");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      (err: unknown) => {
        res.writeHead(500, { "content-type": "text/plain" }).end(`metrics collection failed: ${(err as Error).message}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/** The check's answer, or not ready when it throws or takes longer than READY_TIMEOUT_MS. */
export async function readiness(check: (() => Promise<Readiness>) | undefined, timeoutMs = READY_TIMEOUT_MS): Promise<Readiness> {
  if (!check) return { ready: true };
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<Readiness>((resolve) => {
    timer = setTimeout(() => resolve({ ready: false, reason: `no answer within ${timeoutMs} ms` }), timeoutMs);
  });
  try {
    return await Promise.race([
      check().catch((err: unknown): Readiness => ({ ready: false, reason: err instanceof Error ? err.message : String(err) })),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
