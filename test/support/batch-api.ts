// A small client of the coordinator's OpenAI-compatible HTTP API (plain fetch), for
// tests that drive batches without the openai SDK.
import { openAsBlob } from "node:fs";
import type { BatchEndpoint } from "@batchgen/core";
import type { BatchView } from "@batchgen/coordinator";

/** The batch object as the coordinator returns it (OpenAI's, with progress and usage). */
export type Batch = BatchView;

export interface BatchApi {
  readonly baseUrl: string;
  upload(content: string | { path: string }, filename?: string): Promise<{ id: string }>;
  createBatch(inputFileId: string, endpoint: BatchEndpoint, extra?: Record<string, unknown>): Promise<Batch>;
  getBatch(id: string): Promise<Batch>;
  cancelBatch(id: string): Promise<Batch>;
  /** The content of a file; fails the test on a null id (a batch without that file). */
  fileContent(id: string | null): Promise<string>;
  /** Polls the batch (every 100 ms) until `done` accepts it; throws with the last one seen after timeoutMs. */
  waitUntil(id: string, what: string, done: (batch: Batch) => boolean, timeoutMs: number): Promise<Batch>;
  /** waitUntil the batch's status is one of `statuses`. */
  waitForStatus(id: string, statuses: readonly string[], timeoutMs: number): Promise<Batch>;
}

export function batchApi(baseUrl: string | (() => string), apiKey: string): BatchApi {
  const base = typeof baseUrl === "function" ? baseUrl : () => baseUrl;
  // The coordinator's JSON answers are typed by the callers below.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const call = async (method: string, path: string, body?: unknown): Promise<any> => {
    const headers: Record<string, string> = { authorization: `Bearer ${apiKey}` };
    let payload: string | FormData | undefined;
    if (body instanceof FormData) payload = body;
    else if (body !== undefined) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const res = await fetch(base() + path, { method, headers, body: payload });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${text.slice(0, 500)}`);
    return path.endsWith("/content") ? text : JSON.parse(text);
  };
  const api: BatchApi = {
    get baseUrl() {
      return base();
    },
    async upload(content, filename = "input.jsonl") {
      const form = new FormData();
      form.set("purpose", "batch");
      form.set("file", typeof content === "string" ? new Blob([content]) : await openAsBlob(content.path), filename);
      return call("POST", "/v1/files", form);
    },
    createBatch: (inputFileId, endpoint, extra = {}) =>
      call("POST", "/v1/batches", { input_file_id: inputFileId, endpoint, completion_window: "24h", ...extra }),
    getBatch: (id) => call("GET", `/v1/batches/${id}`),
    cancelBatch: (id) => call("POST", `/v1/batches/${id}/cancel`),
    async fileContent(id) {
      if (id === null) throw new Error("the batch has no such file (its file id is null)");
      return call("GET", `/v1/files/${id}/content`);
    },
    async waitUntil(id, what, done, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      let last: Batch | string | null = null;
      while (Date.now() < deadline) {
        try {
          last = await api.getBatch(id);
        } catch (err) {
          // A replica going away mid-test answers with a refused connection; keep polling.
          last = String(err);
        }
        if (typeof last !== "string" && done(last)) return last;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`batch ${id}: not ${what} within ${timeoutMs} ms; last seen: ${JSON.stringify(last)}`);
    },
    waitForStatus: (id, statuses, timeoutMs) =>
      api.waitUntil(id, `in status ${statuses.join("/")}`, (b) => statuses.includes(b.status), timeoutMs),
  };
  return api;
}
