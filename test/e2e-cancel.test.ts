// Acceptance (issue 3): cancelling a running batch stops the workers' in-flight lines
// within seconds; the lines already finished stay in output.jsonl, every other line is
// in errors.jsonl as batch_cancelled, and request_counts add up.
import { afterAll, beforeAll, expect, test } from "vitest";
import { batchApi } from "./support/batch-api.js";
import { expectEveryLineOnce, expectMatchesReference, parseJsonl } from "./support/batch-output.js";
import { chatLines, toJsonl } from "./support/batch-requests.js";
import { API_KEY, startTwoWorkerCluster, type TwoWorkerCluster } from "./support/e2e-cluster.js";
import { E2E_MODEL, e2eModelDir } from "./support/e2e-model.js";
import { EngineReference } from "./support/engine-reference.js";
import { metricValue } from "./support/prometheus-text.js";

const LINES = 600;

let modelDir: string;
let cluster: TwoWorkerCluster | undefined;

beforeAll(async () => {
  modelDir = await e2eModelDir();
  // A stop grace far longer than the bound below: the batch can only end that soon
  // because the workers dropped its leases, not because the grace ran out.
  cluster = await startTwoWorkerCluster(modelDir, { shardLines: 50, stopGraceMs: 60_000 });
});

afterAll(async () => {
  await cluster?.stop();
});

test("cancel mid-run keeps finished lines and marks the rest cancelled, within seconds", async () => {
  const { coordinator, workers } = cluster!;
  const api = batchApi(coordinator.httpUrl, API_KEY);
  // Long completions (up to 400 tokens): lines are still running when the cancel comes.
  const lines = chatLines(LINES, { model: E2E_MODEL, prefix: "cancel", minTokens: 300, maxTokens: 400 });
  const file = await api.upload(toJsonl(lines));
  const batch = await api.createBatch(file.id, "/v1/chat/completions");

  const partly = await api.waitUntil(
    batch.id,
    "running with 40 lines done",
    (b) => {
      if (!["validating", "in_progress"].includes(b.status)) throw new Error(`batch ${b.status} before the cancel`);
      return (b.progress?.lines_done ?? 0) >= 40;
    },
    30_000,
  );
  const doneAtCancel = partly.progress?.lines_done ?? 0;
  const running = await Promise.all(workers.map(async (w) => metricValue(await w.metrics(), "batchgen_worker_requests_running")));
  const cancelledAt = Date.now();
  const cancelling = await api.cancelBatch(batch.id);
  expect(["cancelling", "cancelled"]).toContain(cancelling.status);

  const done = await api.waitForStatus(batch.id, ["cancelled", "completed", "failed", "expired"], 30_000);
  const stopSeconds = (Date.now() - cancelledAt) / 1000;
  expect(done.status).toBe("cancelled");
  expect(stopSeconds).toBeLessThan(6);
  expect(done.cancelling_at).not.toBeNull();
  expect(done.cancelled_at).not.toBeNull();

  // The engines are idle: in-flight lines were aborted, not run to the end.
  for (const w of workers) {
    const m = await w.metrics();
    expect(metricValue(m, "batchgen_worker_requests_running") + metricValue(m, "batchgen_worker_requests_waiting")).toBe(0);
  }

  const output = parseJsonl(await api.fileContent(done.output_file_id));
  const errors = parseJsonl(await api.fileContent(done.error_file_id));
  expectEveryLineOnce(lines, output, errors);
  expect(done.request_counts).toEqual({ total: LINES, completed: output.length, failed: errors.length });
  // What finished before the cancel is kept; the cancel stopped the rest.
  expect(output.length).toBeGreaterThanOrEqual(doneAtCancel);
  expect(output.length).toBeLessThan(LINES);
  expect(errors.every((l) => l.response === null && l.error?.code === "batch_cancelled")).toBe(true);
  // Lines that finished are real, whole answers.
  const reference = await EngineReference.load(modelDir);
  try {
    const finished = new Set(output.map((l) => l.custom_id));
    const finishedInput = lines.filter((l) => finished.has(l.custom_id));
    expectMatchesReference(finishedInput, output, await reference.expected(finishedInput));
  } finally {
    await reference.close();
  }
  console.log(
    `cancelled at ${doneAtCancel}/${LINES} lines with ${running.join("+")} running; ${output.length} kept, ${errors.length} cancelled; stopped in ${stopSeconds.toFixed(1)} s`,
  );
});
