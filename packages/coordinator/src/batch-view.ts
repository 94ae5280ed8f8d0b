// A stored batch as the OpenAI Batch object (unix-second timestamps), plus the
// documented extensions: `model`, `adapters` (the LoRA adapters of `model` its lines run
// on), `usage`, and `progress` (lines, tokens, tokens/s, ETA).
import type { BatchObject, FileObject } from "@batchgen/core";
import type { BatchRecord, FileRecord } from "./job-store.js";

const sec = (ms: number | null): number | null => (ms === null ? null : Math.floor(ms / 1000));

export type BatchView = BatchObject & {
  model: string | null;
  adapters: string[];
  usage: {
    input_tokens: number;
    input_tokens_details: { cached_tokens: number };
    output_tokens: number;
    output_tokens_details: { reasoning_tokens: number };
    total_tokens: number;
  };
};

export function batchView(b: BatchRecord, nowMs: number = Date.now()): BatchView {
  const done = b.completed + b.failed;
  const endMs = b.finalizingAtMs ?? b.completedAtMs ?? b.cancelledAtMs ?? b.expiredAtMs ?? nowMs;
  const elapsedS = b.inProgressAtMs === null ? 0 : Math.max(0.001, (endMs - b.inProgressAtMs) / 1000);
  const running = b.status === "in_progress";
  const rate = elapsedS > 0 ? done / elapsedS : 0;
  return {
    id: b.id,
    object: "batch",
    endpoint: b.endpoint,
    errors: b.errors && b.errors.length > 0 ? { object: "list", data: b.errors } : null,
    input_file_id: b.inputFileId,
    completion_window: b.completionWindow,
    status: b.status,
    output_file_id: b.outputFileId,
    error_file_id: b.errorFileId,
    created_at: sec(b.createdAtMs)!,
    in_progress_at: sec(b.inProgressAtMs),
    expires_at: sec(b.expiresAtMs),
    finalizing_at: sec(b.finalizingAtMs),
    completed_at: sec(b.completedAtMs),
    failed_at: sec(b.failedAtMs),
    expired_at: sec(b.expiredAtMs),
    cancelling_at: sec(b.cancellingAtMs),
    cancelled_at: sec(b.cancelledAtMs),
    request_counts: { total: b.total, completed: b.completed, failed: b.failed },
    metadata: b.metadata,
    model: b.model,
    adapters: b.adapters ?? [],
    usage: {
      input_tokens: b.promptTokens,
      input_tokens_details: { cached_tokens: b.promptTokensCached },
      output_tokens: b.completionTokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: b.promptTokens + b.completionTokens,
    },
    progress: {
      lines_done: done,
      prompt_tokens: b.promptTokens,
      completion_tokens: b.completionTokens,
      prompt_tokens_cached: b.promptTokensCached,
      prompt_tokens_computed: b.promptTokens - b.promptTokensCached,
      tokens_per_second: elapsedS > 0 ? Math.round((b.completionTokens / elapsedS) * 10) / 10 : 0,
      eta_seconds: running && rate > 0 ? Math.ceil((b.total - done) / rate) : running ? null : 0,
    },
  };
}

export function fileView(f: FileRecord): FileObject {
  return {
    id: f.id,
    object: "file",
    bytes: f.bytes,
    created_at: Math.floor(f.createdAtMs / 1000),
    filename: f.filename,
    purpose: f.purpose,
    status: "processed",
    expires_at: sec(f.expiresAtMs),
  };
}
