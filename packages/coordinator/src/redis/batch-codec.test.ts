import { describe, expect, it } from "vitest";
import type { BatchRecord } from "../job-store.js";
import { decodeBatch, encodeBatchFields } from "./batch-codec.js";
import { bullPriority, queueNameOf, shardJobId } from "./bullmq-shard-queues.js";

const record: BatchRecord = {
  id: "batch_1",
  tenant: "t",
  status: "in_progress",
  endpoint: "/v1/completions",
  inputFileId: "file_1",
  inputKey: "files/file_1",
  completionWindow: "24h",
  metadata: { a: "b" },
  priority: 5,
  createdAtMs: 1000,
  expiresAtMs: 2000,
  inProgressAtMs: 1500,
  finalizingAtMs: null,
  completedAtMs: null,
  failedAtMs: null,
  expiredAtMs: null,
  cancellingAtMs: null,
  cancelledAtMs: null,
  outputFileId: null,
  errorFileId: null,
  errors: [{ code: "x", message: "y", param: null, line: 3 }],
  model: "m",
  adapters: ["sql-lora"],
  total: 10,
  shards: 1,
  shardLines: 256,
  completed: 4,
  failed: 1,
  promptTokens: 7,
  completionTokens: 9,
  promptTokensCached: 3,
  stopReason: null,
  outputExpiresAfterS: null,
};

describe("batch codec", () => {
  it("round-trips a record through hash fields", () => {
    const { id, ...fields } = record;
    const hash = Object.fromEntries(encodeBatchFields(fields).filter(([, v]) => v !== ""));
    expect(decodeBatch(id, hash)).toEqual(record);
  });
  it("writes null as an empty value (a delete) and reads absent counters as 0", () => {
    expect(encodeBatchFields({ outputFileId: null, total: 3 })).toEqual([
      ["output_file_id", ""],
      ["total", "3"],
    ]);
    const b = decodeBatch("batch_2", { status: "validating", tenant: "t" })!;
    expect(b.completed).toBe(0);
    expect(b.model).toBeNull();
    expect(decodeBatch("batch_3", {})).toBeNull();
  });
});

describe("shard queue naming", () => {
  it("makes one valid, distinct BullMQ queue name per model", () => {
    expect(queueNameOf("google/gemma-2b")).toMatch(/^model-google_gemma-2b-[0-9a-f]{10}$/);
    expect(queueNameOf("a:b")).not.toContain(":");
    expect(queueNameOf("a/b")).not.toBe(queueNameOf("a_b"));
    expect(shardJobId("batch_x", 3)).toBe("batch_x.3");
  });
  it("maps higher batch priority to a smaller (sooner) BullMQ priority, within range", () => {
    expect(bullPriority(0)).toBe(1001);
    expect(bullPriority(1000)).toBe(1);
    expect(bullPriority(5000)).toBe(1);
    expect(bullPriority(-1000)).toBe(2001);
    expect(bullPriority(10)).toBeLessThan(bullPriority(9));
  });
});
