// Test harness: coordinator replicas on free ports over the test run's Redis
// (process.env.REDIS_URL, started by the global setup) with a random key prefix and a
// temporary store folder per test, plus small HTTP helpers.
/* eslint-disable @typescript-eslint/no-explicit-any -- API response bodies are untyped JSON */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { createLogger } from "@batchgen/core";
import { createCoordinator, type Coordinator, type CoordinatorOptions } from "../../src/index.js";

export const KEY_A = "sk-test-a";
export const KEY_B = "sk-test-b";
export const WORKER_TOKEN = "worker-secret";
export const MODEL = "test-model";

export interface Cluster {
  prefix: string;
  storeDir: string;
  replicas: Coordinator[];
  url(i?: number): string;
  grpc(i?: number): string;
  /** Start one more replica on the same Redis prefix and store. */
  addReplica(overrides?: CoordinatorOptions): Promise<Coordinator>;
  stop(): Promise<void>;
}

export async function startCluster(overrides: CoordinatorOptions = {}, replicas = 1): Promise<Cluster> {
  const redisUrl = process.env.REDIS_URL;
  if (!redisUrl) throw new Error("REDIS_URL is not set: run tests through vitest (test/support/global-setup.ts)");
  const prefix = `t${randomBytes(6).toString("hex")}`;
  const storeDir = mkdtempSync(join(tmpdir(), "bg-coord-"));
  const base: CoordinatorOptions = {
    httpPort: 0,
    grpcPort: 0,
    redisUrl,
    queuePrefix: prefix,
    storeUrl: storeDir,
    apiKeys: [`${KEY_A}:tenant-a`, `${KEY_B}:tenant-b`],
    workerToken: WORKER_TOKEN,
    lockDurationMs: 2_000,
    stalledIntervalMs: 500,
    monitorIntervalMs: 200,
    leasePollMs: 100,
    heartbeatIntervalMs: 1_000,
    stopGraceMs: 5_000,
    logLevel: (process.env.BATCHGEN_TEST_LOG_LEVEL ?? "error") as CoordinatorOptions["logLevel"],
    ...overrides,
  };
  const list: Coordinator[] = [];
  const addReplica = async (more: CoordinatorOptions = {}): Promise<Coordinator> => {
    const c = createCoordinator({ ...base, ...more }, { logger: createLogger("coordinator", { level: process.env.BATCHGEN_TEST_LOG_LEVEL ?? "error" }) });
    await c.start();
    list.push(c);
    return c;
  };
  for (let i = 0; i < replicas; i++) await addReplica();
  return {
    prefix,
    storeDir,
    replicas: list,
    url: (i = 0) => `http://127.0.0.1:${list[i]!.httpPort}`,
    grpc: (i = 0) => `127.0.0.1:${list[i]!.grpcPort}`,
    addReplica,
    async stop() {
      for (const c of list) await c.stop().catch(() => undefined);
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}

export interface ApiResult<T = any> {
  status: number;
  body: T;
}

export async function api<T = any>(
  base: string,
  method: string,
  path: string,
  opts: { key?: string | null; json?: unknown; form?: FormData } = {},
): Promise<ApiResult<T>> {
  const headers: Record<string, string> = {};
  const key = opts.key === undefined ? KEY_A : opts.key;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  let body: string | FormData | undefined;
  if (opts.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(opts.json);
  } else if (opts.form) {
    body = opts.form;
  }
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // raw text (file content)
  }
  return { status: res.status, body: parsed as T };
}

export async function uploadFile(
  base: string,
  content: string | Uint8Array,
  opts: { purpose?: string; key?: string; filename?: string } = {},
): Promise<ApiResult> {
  const form = new FormData();
  form.set("purpose", opts.purpose ?? "batch");
  form.set("file", new Blob([typeof content === "string" ? content : new Uint8Array(content)]), opts.filename ?? "input.jsonl");
  return api(base, "POST", "/v1/files", { key: opts.key ?? KEY_A, form });
}

export function chatLine(customId: string, opts: { model?: string; content?: string; maxTokens?: number } = {}): string {
  return JSON.stringify({
    custom_id: customId,
    method: "POST",
    url: "/v1/chat/completions",
    body: {
      model: opts.model ?? MODEL,
      messages: [{ role: "user", content: opts.content ?? `hello ${customId}` }],
      max_tokens: opts.maxTokens ?? 8,
    },
  });
}

export function jsonl(lines: string[]): string {
  return lines.join("\n") + "\n";
}

/** Upload the lines and create a batch; returns the batch object as created. */
export function completionLine(customId: string, opts: { model?: string; prompt?: string; maxTokens?: number } = {}): string {
  return JSON.stringify({
    custom_id: customId,
    method: "POST",
    url: "/v1/completions",
    body: { model: opts.model ?? MODEL, prompt: opts.prompt ?? `once ${customId}`, max_tokens: opts.maxTokens ?? 8 },
  });
}

export async function submitBatch(
  base: string,
  lines: string[],
  opts: { key?: string; window?: string; metadata?: Record<string, string>; endpoint?: string } = {},
): Promise<any> {
  const file = await uploadFile(base, jsonl(lines), { key: opts.key });
  if (file.status !== 200) throw new Error(`upload failed: ${JSON.stringify(file.body)}`);
  const batch = await api(base, "POST", "/v1/batches", {
    key: opts.key,
    json: {
      input_file_id: file.body.id,
      endpoint: opts.endpoint ?? "/v1/chat/completions",
      completion_window: opts.window ?? "24h",
      ...(opts.metadata ? { metadata: opts.metadata } : {}),
    },
  });
  if (batch.status !== 200) throw new Error(`create failed: ${JSON.stringify(batch.body)}`);
  return batch.body;
}

export async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 30_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

/** Poll the batch until its status is one of `statuses`. */
export async function waitForStatus(base: string, batchId: string, statuses: string[], key = KEY_A, timeoutMs = 30_000): Promise<any> {
  return waitFor(
    `batch ${batchId} to reach ${statuses.join("/")}`,
    async () => {
      const r = await api(base, "GET", `/v1/batches/${batchId}`, { key });
      return statuses.includes(r.body.status) ? r.body : null;
    },
    timeoutMs,
  );
}

export function parseJsonl(text: string): any[] {
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l));
}
