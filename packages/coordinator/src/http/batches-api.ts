// POST /v1/batches, GET /v1/batches/{id}, GET /v1/batches?after=&limit=,
// POST /v1/batches/{id}/cancel — the OpenAI Batch API over the JobStore.
import type { ServerResponse } from "node:http";
import { BatchgenError, isBatchEndpoint, isBatchgenError, newId, BATCH_ENDPOINTS } from "@batchgen/core";
import { batchView } from "../batch-view.js";
import { windowMs } from "../coordinator-config.js";
import type { BatchRecord, JobStore } from "../job-store.js";
import type { FilesApi } from "./files-api.js";
import { invalid, notFound, parseExpiresAfter, sendJson } from "./http-io.js";

export interface BatchesApiDeps {
  store: JobStore;
  files: FilesApi;
  completionWindows: readonly string[];
  /** Start ingest of a new batch (in the background). */
  onCreated(batchId: string): void;
  /** A batch was cancelled: tell the replicas. */
  onCancelled(batch: BatchRecord): Promise<void>;
}


function parseMetadata(v: unknown): Record<string, string> | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== "object" || Array.isArray(v)) throw invalid("'metadata' must be an object of strings.", "metadata");
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length > 16) throw invalid("'metadata' may hold at most 16 keys.", "metadata");
  for (const [k, val] of entries) {
    if (k.length > 64) throw invalid(`metadata key '${k.slice(0, 20)}...' is longer than 64 characters.`, "metadata");
    if (typeof val !== "string") throw invalid(`metadata value of '${k}' must be a string.`, "metadata");
    if (val.length > 512) throw invalid(`metadata value of '${k}' is longer than 512 characters.`, "metadata");
  }
  return Object.fromEntries(entries) as Record<string, string>;
}

export class BatchesApi {
  constructor(private readonly deps: BatchesApiDeps) {}

  private async getOwned(tenant: string, id: string): Promise<BatchRecord> {
    const batch = await this.deps.store.getBatch(id);
    if (!batch || batch.tenant !== tenant) throw notFound("batch", id);
    return batch;
  }

  async create(res: ServerResponse, tenant: string, body: unknown): Promise<void> {
    if (typeof body !== "object" || body === null || Array.isArray(body)) throw invalid("The request body must be a JSON object.", "body");
    const b = body as Record<string, unknown>;
    for (const key of ["input_file_id", "endpoint", "completion_window"]) {
      if (b[key] === undefined || b[key] === null) {
        throw new BatchgenError("invalid_request", `Missing required parameter: '${key}'.`, {
          param: key,
          reason: "missing_required_parameter",
        });
      }
    }
    if (typeof b.input_file_id !== "string") throw invalid("'input_file_id' must be a string.", "input_file_id");
    if (!isBatchEndpoint(b.endpoint)) {
      throw invalid(`'endpoint' must be one of ${BATCH_ENDPOINTS.join(", ")}; got ${JSON.stringify(b.endpoint)}.`, "endpoint");
    }
    const window = b.completion_window;
    if (typeof window !== "string" || !this.deps.completionWindows.includes(window)) {
      throw invalid(
        `'completion_window' must be one of ${this.deps.completionWindows.map((w) => `'${w}'`).join(", ")}; got ${JSON.stringify(window)}.`,
        "completion_window",
      );
    }
    const metadata = parseMetadata(b.metadata);
    const priority = b.priority ?? 0;
    if (typeof priority !== "number" || !Number.isSafeInteger(priority) || priority < -1000 || priority > 1000) {
      throw invalid("'priority' (extension) must be an integer from -1000 to 1000; higher runs first.", "priority");
    }
    const outputExpiresAfterS = parseExpiresAfter(b.output_expires_after, "output_expires_after");
    let file;
    try {
      file = await this.deps.files.getOwned(tenant, b.input_file_id);
    } catch (err) {
      // Only "no such file" names the parameter; a store failure stays what it is.
      if (!isBatchgenError(err) || err.code !== "not_found") throw err;
      throw new BatchgenError("not_found", `No file found with id '${b.input_file_id}'.`, { param: "input_file_id" });
    }
    if (file.purpose !== "batch") {
      throw invalid(`The file '${file.id}' has purpose '${file.purpose}'; a batch needs a file with purpose 'batch'.`, "input_file_id");
    }
    const now = Date.now();
    const batch: BatchRecord = {
      id: newId("batch", now),
      tenant,
      status: "validating",
      endpoint: b.endpoint,
      inputFileId: file.id,
      inputKey: file.key,
      completionWindow: window,
      metadata,
      priority,
      createdAtMs: now,
      expiresAtMs: now + windowMs(window),
      inProgressAtMs: null,
      finalizingAtMs: null,
      completedAtMs: null,
      failedAtMs: null,
      expiredAtMs: null,
      cancellingAtMs: null,
      cancelledAtMs: null,
      outputFileId: null,
      errorFileId: null,
      errors: null,
      model: null,
      adapters: null,
      total: 0,
      shards: 0,
      shardLines: 0,
      completed: 0,
      failed: 0,
      promptTokens: 0,
      completionTokens: 0,
      promptTokensCached: 0,
      stopReason: null,
      outputExpiresAfterS,
    };
    if (!(await this.deps.store.createBatch(batch))) {
      // Deleted since it was looked up above.
      throw new BatchgenError("not_found", `No file found with id '${file.id}'.`, { param: "input_file_id" });
    }
    this.deps.onCreated(batch.id);
    sendJson(res, 200, batchView(batch, now));
  }

  async retrieve(res: ServerResponse, tenant: string, id: string): Promise<void> {
    sendJson(res, 200, batchView(await this.getOwned(tenant, id)));
  }

  async list(res: ServerResponse, tenant: string, query: URLSearchParams): Promise<void> {
    const after = query.get("after") || null;
    const limitText = query.get("limit");
    const limit = limitText === null ? 20 : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw invalid("'limit' must be an integer from 1 to 100.", "limit");
    const { ids, hasMore } = await this.deps.store.listBatchIds(tenant, after, limit);
    const now = Date.now();
    const data = (await this.deps.store.getBatches(ids)).filter((b): b is BatchRecord => b !== null).map((b) => batchView(b, now));
    sendJson(res, 200, {
      object: "list",
      data,
      first_id: data[0]?.id ?? null,
      last_id: data[data.length - 1]?.id ?? null,
      has_more: hasMore,
    });
  }

  async cancel(res: ServerResponse, tenant: string, id: string): Promise<void> {
    const { store } = this.deps;
    const batch = await this.getOwned(tenant, id);
    if (batch.status === "cancelling" || batch.status === "cancelled") {
      sendJson(res, 200, batchView(batch));
      return;
    }
    const now = Date.now();
    const moved = await store.transitionBatch(id, ["validating", "in_progress"], "cancelling", {
      cancellingAtMs: now,
      stopReason: "cancelled",
    });
    const after = (await store.getBatch(id))!;
    if (!moved && after.status !== "cancelling" && after.status !== "cancelled") {
      throw new BatchgenError("conflict", `Cannot cancel a batch with status '${after.status}'.`, { param: "id" });
    }
    if (moved) await this.deps.onCancelled(after);
    sendJson(res, 200, batchView(after));
  }
}
