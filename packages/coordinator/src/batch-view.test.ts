import { describe, expect, it } from "vitest";
import { batchView } from "./batch-view.js";
import type { BatchRecord } from "./job-store.js";

const base: BatchRecord = {
  id: "batch_1", tenant: "t", status: "in_progress", endpoint: "/v1/chat/completions", inputFileId: "file_1", inputKey: "files/file_1",
  completionWindow: "24h", metadata: null, priority: 0, createdAtMs: 1_000_500, expiresAtMs: 87_400_500, inProgressAtMs: 1_000_000,
  finalizingAtMs: null, completedAtMs: null, failedAtMs: null, expiredAtMs: null, cancellingAtMs: null, cancelledAtMs: null,
  outputFileId: null, errorFileId: null, errors: null, model: "m", adapters: null, total: 100, shards: 1, shardLines: 256, completed: 20, failed: 5,
  promptTokens: 300, completionTokens: 500, promptTokensCached: 120, stopReason: null, outputExpiresAfterS: null,
};

describe("batchView", () => {
  it("renders unix seconds, request counts, usage and progress with an ETA", () => {
    const v = batchView(base, 11_000_000); // 10 000 s after in_progress
    expect(v.created_at).toBe(1000);
    expect(v.in_progress_at).toBe(1000);
    expect(v.request_counts).toEqual({ total: 100, completed: 20, failed: 5 });
    expect(v.usage.total_tokens).toBe(800);
    expect(v.progress).toEqual({
      lines_done: 25, prompt_tokens: 300, completion_tokens: 500, prompt_tokens_cached: 120, prompt_tokens_computed: 180,
      tokens_per_second: 0.1, eta_seconds: 30_000,
    });
    expect(v.usage.input_tokens_details.cached_tokens).toBe(120);
  });
  it("has no ETA before the first line and none once final", () => {
    expect(batchView({ ...base, completed: 0, failed: 0 }, 2_000_000).progress?.eta_seconds).toBeNull();
    const done = batchView({ ...base, status: "completed", completed: 100, failed: 0, completedAtMs: 3_000_000 }, 9_000_000);
    expect(done.progress?.eta_seconds).toBe(0);
    expect(done.completed_at).toBe(3000);
  });
  it("omits empty errors, as OpenAI does", () => {
    expect(batchView({ ...base, errors: [] }).errors).toBeNull();
    expect(batchView({ ...base, errors: [{ code: "c", message: "m", param: null, line: 1 }] }).errors).toEqual({
      object: "list",
      data: [{ code: "c", message: "m", param: null, line: 1 }],
    });
  });
});
