import { describe, expect, it } from "vitest";
import type { Batch } from "./api-client.js";
import { formatBatch, formatBatchTable, formatDuration, isTerminal } from "./batch-format.js";

const batch = (over: Partial<Batch> = {}): Batch => ({
  id: "batch_1",
  object: "batch",
  endpoint: "/v1/chat/completions",
  errors: null,
  input_file_id: "file_in",
  completion_window: "24h",
  status: "in_progress",
  output_file_id: null,
  error_file_id: null,
  created_at: 1_700_000_000,
  in_progress_at: 1_700_000_005,
  expires_at: 1_700_086_400,
  finalizing_at: null,
  completed_at: null,
  failed_at: null,
  expired_at: null,
  cancelling_at: null,
  cancelled_at: null,
  request_counts: { total: 10, completed: 3, failed: 1 },
  metadata: { team: "search" },
  model: "tiny-gemma",
  progress: { lines_done: 4, prompt_tokens: 100, completion_tokens: 40, tokens_per_second: 12.5, eta_seconds: 95 },
  ...over,
});

describe("batch formatting", () => {
  it("formats durations", () => {
    expect(formatDuration(5)).toBe("5s");
    expect(formatDuration(95)).toBe("1m35s");
    expect(formatDuration(7260)).toBe("2h01m");
    expect(formatDuration(null)).toBe("?");
  });

  it("knows the final statuses", () => {
    expect(["completed", "failed", "expired", "cancelled"].every(isTerminal)).toBe(true);
    expect(["validating", "in_progress", "finalizing", "cancelling"].some(isTerminal)).toBe(false);
  });

  it("shows a running batch with counts, progress and ETA", () => {
    const text = formatBatch(batch());
    expect(text).toMatch(/^status\s+in_progress$/m);
    expect(text).toMatch(/^requests\s+4\/10 done \(3 ok, 1 failed\)$/m);
    expect(text).toMatch(/^tokens\s+100 in, 40 out, 12\.5 tok\/s$/m);
    expect(text).toMatch(/^eta\s+1m35s$/m);
    expect(text).toMatch(/^created\s+2023-11-14T22:13:20Z$/m);
    expect(text).toMatch(/^metadata\s+team=search$/m);
    expect(text).not.toMatch(/^output file/m);
  });

  it("lists validation errors with line numbers", () => {
    const failed = batch({
      status: "failed",
      errors: { object: "list", data: [{ code: "duplicate_custom_id", message: "The custom_id is used twice.", param: "custom_id", line: 7 }] },
    });
    expect(formatBatch(failed)).toContain("errors:\n  line 7: The custom_id is used twice. [duplicate_custom_id]");
  });

  it("lays out a table of batches", () => {
    const table = formatBatchTable([batch(), batch({ id: "batch_22", status: "completed", request_counts: { total: 2, completed: 2, failed: 0 } })]);
    const rows = table.split("\n");
    expect(rows[0]).toMatch(/^ID\s+STATUS\s+MODEL\s+DONE\s+CREATED$/);
    expect(rows[1]).toMatch(/^batch_1\s+in_progress\s+tiny-gemma\s+4\/10\s+2023-11-14T22:13:20Z$/);
    expect(rows[2]).toMatch(/^batch_22\s+completed\s+tiny-gemma\s+2\/2\s/);
    expect(formatBatchTable([])).toBe("no batches");
  });
});
