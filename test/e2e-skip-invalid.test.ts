// The opt-in "run the good lines" extension (batch metadata skip_invalid_lines: "true"):
// a 1,000-line file with 3 invalid lines completes with 997 results in output.jsonl and
// the 3 invalid lines, with their line numbers and error codes, in errors.jsonl. Without
// the extension the same file fails validation (OpenAI's rule).
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { batchApi, type BatchApi } from "./support/batch-api.js";
import { parseJsonl } from "./support/batch-output.js";
import { chatLines } from "./support/batch-requests.js";
import { API_KEY, clusterSettings, coordinatorOptions, spawnWorker, startInProcessCoordinator, type ClusterSettings, type RunningCoordinator, type WorkerProcess } from "./support/e2e-cluster.js";
import { E2E_MODEL, e2eModelDir } from "./support/e2e-model.js";

const LINES = 1_000;
const FINAL = ["completed", "failed", "expired", "cancelled"];

let settings: ClusterSettings;
let coordinator: RunningCoordinator;
let worker: WorkerProcess;
let api: BatchApi;
let file: string;
// 0-based positions of the bad lines among the 1,000 (file line = index + 1).
const BAD = { 17: "invalid_json_line", 500: "duplicate_custom_id", 998: "mismatched_model" } as Record<number, string>;

beforeAll(async () => {
  const modelDir = await e2eModelDir();
  settings = clusterSettings();
  coordinator = await startInProcessCoordinator(coordinatorOptions(settings, { shardLines: 128 }));
  worker = spawnWorker("skip-worker", { coordinator: coordinator.grpcAddress, modelDir });
  await worker.connected();
  api = batchApi(coordinator.httpUrl, API_KEY);
  const lines = chatLines(LINES, { model: E2E_MODEL, prefix: "good", minTokens: 2, maxTokens: 4 }).map((l, i): string => {
    if (i === 17) return `{"custom_id": "broken-17", "method": "POST", "url": "/v1/chat/compl`;
    if (i === 500) return JSON.stringify({ ...l, custom_id: "good-3" });
    if (i === 998) return JSON.stringify({ ...l, body: { ...l.body, model: "some-other-model" } });
    return JSON.stringify(l);
  });
  file = (await api.upload(lines.join("\n") + "\n")).id;
});

afterAll(async () => {
  await worker?.stop();
  await coordinator?.stop();
  settings?.cleanup();
});

describe("skip_invalid_lines", () => {
  test("3 invalid lines among 1,000: 997 results and 3 line-numbered errors", async () => {
    const created = await api.createBatch(file, "/v1/chat/completions", { metadata: { skip_invalid_lines: "true" } });
    const done = await api.waitForStatus(created.id, FINAL, 120_000);
    expect(done.status, JSON.stringify(done.errors)).toBe("completed");
    expect(done.request_counts).toEqual({ total: LINES, completed: LINES - 3, failed: 3 });

    const output = parseJsonl(await api.fileContent(done.output_file_id)) as Array<{ custom_id: string; response: { status_code: number } }>;
    expect(output).toHaveLength(LINES - 3);
    const expectedIds = Array.from({ length: LINES }, (_, i) => i).filter((i) => !(i in BAD)).map((i) => `good-${i}`);
    expect(output.map((l) => l.custom_id)).toEqual(expectedIds);
    expect(output.every((l) => l.response.status_code === 200)).toBe(true);

    const errors = parseJsonl(await api.fileContent(done.error_file_id)) as unknown as Array<{ custom_id: string | null; response: null; error: { code: string; line: number; message: string } }>;
    expect(errors.map((e) => [e.error.line, e.error.code, e.custom_id])).toEqual([
      [18, "invalid_json_line", null],
      [501, "duplicate_custom_id", "good-3"],
      [999, "mismatched_model", "good-998"],
    ]);
    for (const e of errors) {
      expect(e.response).toBeNull();
      expect(e.error.message.length).toBeGreaterThan(10);
    }
  });

  test("without it the same file fails validation with the line numbers (OpenAI's rule)", async () => {
    const created = await api.createBatch(file, "/v1/chat/completions");
    const done = await api.waitForStatus(created.id, FINAL, 60_000);
    expect(done.status).toBe("failed");
    expect(done.errors!.data.map((e) => e.line)).toEqual([18, 501, 999]);
  });
});
