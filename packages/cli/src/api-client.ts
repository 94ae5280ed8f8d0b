// The coordinator's OpenAI-compatible HTTP API, as the CLI uses it. Every failure
// becomes a CliError that says what to do: coordinator unreachable, key refused,
// unknown id, or the server's own OpenAI error message.
import { openAsBlob } from "node:fs";
import { basename } from "node:path";
import { Readable } from "node:stream";
import type { BatchObject, FileObject } from "@batchgen/core";
import { CliError } from "./cli-error.js";

export type Batch = BatchObject & { model?: string | null };

export interface BatchList {
  object: "list";
  data: Batch[];
  first_id: string | null;
  last_id: string | null;
  has_more: boolean;
}

export interface ApiClientOptions {
  baseUrl: string;
  apiKey?: string;
  /** Per request; uploads and downloads get no limit. */
  timeoutMs?: number;
}

export class ApiClient {
  readonly baseUrl: string;

  constructor(private readonly opts: ApiClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, "").replace(/\/v1$/, "");
  }

  async uploadFile(path: string, filename = basename(path)): Promise<FileObject> {
    const form = new FormData();
    form.set("purpose", "batch");
    form.set("file", await openAsBlob(path, { type: "application/jsonl" }), filename);
    return this.json<FileObject>("POST", "/v1/files", { body: form, timeout: false });
  }

  createBatch(params: { inputFileId: string; endpoint: string; completionWindow: string; metadata?: Record<string, string> }): Promise<Batch> {
    return this.json<Batch>("POST", "/v1/batches", {
      json: {
        input_file_id: params.inputFileId,
        endpoint: params.endpoint,
        completion_window: params.completionWindow,
        ...(params.metadata ? { metadata: params.metadata } : {}),
      },
    });
  }

  getBatch(id: string): Promise<Batch> {
    return this.json<Batch>("GET", `/v1/batches/${encodeURIComponent(id)}`);
  }

  listBatches(params: { after?: string; limit?: number } = {}): Promise<BatchList> {
    const q = new URLSearchParams();
    if (params.after) q.set("after", params.after);
    if (params.limit !== undefined) q.set("limit", String(params.limit));
    const qs = q.toString();
    return this.json<BatchList>("GET", `/v1/batches${qs ? `?${qs}` : ""}`);
  }

  cancelBatch(id: string): Promise<Batch> {
    return this.json<Batch>("POST", `/v1/batches/${encodeURIComponent(id)}/cancel`);
  }

  /** The file's bytes as a Node stream. */
  async fileContent(id: string): Promise<Readable> {
    const res = await this.request("GET", `/v1/files/${encodeURIComponent(id)}/content`, { timeout: false });
    if (!res.body) return Readable.from([]);
    return Readable.fromWeb(res.body as import("node:stream/web").ReadableStream<Uint8Array>);
  }

  private async json<T>(method: string, path: string, opts: RequestOpts = {}): Promise<T> {
    const res = await this.request(method, path, opts);
    const text = await res.text();
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError(`${this.baseUrl} answered ${method} ${path} with something that is not JSON; is that a batchgen coordinator?`);
    }
  }

  private async request(method: string, path: string, opts: RequestOpts): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.opts.apiKey) headers.authorization = `Bearer ${this.opts.apiKey}`;
    let body: BodyInit | undefined;
    if (opts.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(opts.json);
    } else if (opts.body) body = opts.body;
    const timeoutMs = opts.timeout === false ? undefined : (this.opts.timeoutMs ?? 30_000);
    let res: Response;
    try {
      res = await fetch(this.baseUrl + path, {
        method,
        headers,
        ...(body !== undefined ? { body } : {}),
        ...(timeoutMs ? { signal: AbortSignal.timeout(timeoutMs) } : {}),
      });
    } catch (err) {
      throw this.networkError(err);
    }
    if (res.ok) return res;
    const message = await errorMessage(res);
    if (res.status === 401) {
      throw new CliError(`the coordinator refused the API key (401: ${message}). Pass --api-key or set BATCHGEN_API_KEY.`);
    }
    if (res.status === 404) throw new CliError(message);
    throw new CliError(`${method} ${path} failed (${res.status}): ${message}`);
  }

  private networkError(err: unknown): CliError {
    const e = err as { name?: string; cause?: { code?: string; message?: string }; message?: string };
    if (e?.name === "TimeoutError" || e?.name === "AbortError") {
      return new CliError(`the coordinator at ${this.baseUrl} did not answer in time.`);
    }
    const code = e?.cause?.code;
    const why = code ?? e?.cause?.message ?? e?.message ?? String(err);
    return new CliError(
      `cannot reach the coordinator at ${this.baseUrl} (${why}). Is it running (\`batchgen up\`)? Pass --url or set BATCHGEN_URL.`,
    );
  }
}

interface RequestOpts {
  json?: unknown;
  body?: BodyInit;
  timeout?: false;
}

async function errorMessage(res: Response): Promise<string> {
  const text = await res.text().catch(() => "");
  try {
    const parsed = JSON.parse(text) as { error?: { message?: string } };
    if (parsed.error?.message) return parsed.error.message;
  } catch {
    // not an OpenAI error body
  }
  return text.trim().slice(0, 300) || res.statusText || "no details";
}
