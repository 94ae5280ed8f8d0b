// A real coordinator for the worker's integration tests: Redis from the test run's
// global setup (REDIS_URL) under a random prefix, a temporary folder as object storage,
// ports picked by the system; plus the few HTTP calls the tests make.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "@batchgen/core";
import { createCoordinator, type Coordinator, type CoordinatorOptions } from "@batchgen/coordinator";

export const API_KEY = "sk-test-worker";

export interface Harness {
  coordinator: Coordinator;
  url: string;
  grpcAddress: string;
  workerToken: string;
  stop(): Promise<void>;
}

export async function startCoordinator(opts: { shardLines?: number; overrides?: CoordinatorOptions } = {}): Promise<Harness> {
  const redisUrl = process.env.REDIS_URL;
  if (!redisUrl) throw new Error("REDIS_URL is not set: run through vitest (test/support/global-setup.ts starts Redis)");
  const dir = await mkdtemp(join(tmpdir(), "bg-worker-it-"));
  const workerToken = randomBytes(8).toString("hex");
  const coordinator = createCoordinator(
    {
      httpHost: "127.0.0.1",
      httpPort: 0,
      grpcHost: "127.0.0.1",
      grpcPort: 0,
      redisUrl,
      queuePrefix: `wt-${randomBytes(4).toString("hex")}`,
      storeUrl: join(dir, "store"),
      apiKeys: [`${API_KEY}:t1`],
      workerToken,
      shardLines: opts.shardLines ?? 4,
      lockDurationMs: 5_000,
      stalledIntervalMs: 1_000,
      heartbeatIntervalMs: 500,
      monitorIntervalMs: 200,
      logLevel: "warn",
      ...opts.overrides,
    },
    { logger: createLogger("coordinator", { level: "warn" }) },
  );
  await coordinator.start();
  return {
    coordinator,
    url: `http://127.0.0.1:${coordinator.httpPort}`,
    grpcAddress: `127.0.0.1:${coordinator.grpcPort}`,
    workerToken,
    async stop() {
      await coordinator.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function call<T>(url: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(url, { ...init, headers: { authorization: `Bearer ${API_KEY}`, ...(init.headers ?? {}) } });
  const text = await res.text();
  if (!res.ok) throw new Error(`${init.method ?? "GET"} ${url}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

export interface BatchState {
  id: string;
  status: string;
  output_file_id: string | null;
  error_file_id: string | null;
  errors: unknown;
  request_counts: { total: number; completed: number; failed: number };
}

export async function submitBatch(h: Harness, lines: object[], endpoint: string): Promise<string> {
  const form = new FormData();
  form.set("purpose", "batch");
  form.set("file", new Blob([lines.map((l) => JSON.stringify(l)).join("\n") + "\n"]), "input.jsonl");
  const file = await call<{ id: string }>(`${h.url}/v1/files`, { method: "POST", body: form });
  const batch = await call<{ id: string }>(`${h.url}/v1/batches`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ input_file_id: file.id, endpoint, completion_window: "24h" }),
  });
  return batch.id;
}

export function getBatch(h: Harness, id: string): Promise<BatchState> {
  return call<BatchState>(`${h.url}/v1/batches/${id}`);
}

export async function waitForBatch(h: Harness, id: string, until: (b: BatchState) => boolean, timeoutMs = 60_000): Promise<BatchState> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const b = await getBatch(h, id);
    if (until(b)) return b;
    if (Date.now() > deadline) throw new Error(`batch ${id} still ${b.status} (${JSON.stringify(b.request_counts)}) after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function fileLines<T = Record<string, unknown>>(h: Harness, fileId: string): Promise<T[]> {
  const res = await fetch(`${h.url}/v1/files/${fileId}/content`, { headers: { authorization: `Bearer ${API_KEY}` } });
  if (!res.ok) throw new Error(`file ${fileId}: ${res.status}`);
  return (await res.text())
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as T);
}
