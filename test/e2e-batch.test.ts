// Acceptance (issue 3), end to end: a 2,000-line batch of chat and completion lines
// mixed (a batchgen extension: OpenAI's API wants one endpoint per batch) across a
// coordinator and TWO worker processes on the real CPU engine completes; output.jsonl
// holds every custom_id exactly once, in input order, and every completion equals what
// the engine alone answers for the same request. Then one batch runs against an
// S3-compatible server (s3rver) instead of the filesystem store.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { S3ObjectStore } from "@batchgen/core";
import { startS3rver, type S3rverHandle } from "../packages/core/test/support/s3rver.js";
import { batchApi } from "./support/batch-api.js";
import { expectEveryLineOnce, expectMatchesReference, parseJsonl } from "./support/batch-output.js";
import { chatLines, mixedLines, toJsonl } from "./support/batch-requests.js";
import {
  API_KEY,
  clusterSettings,
  coordinatorOptions,
  spawnWorker,
  startInProcessCoordinator,
  startTwoWorkerCluster,
  type ClusterSettings,
  type TwoWorkerCluster,
  type WorkerProcess,
} from "./support/e2e-cluster.js";
import { E2E_MODEL, e2eModelDir } from "./support/e2e-model.js";
import { EngineReference } from "./support/engine-reference.js";
import { metricValue } from "./support/prometheus-text.js";

let modelDir: string;
let reference: EngineReference;

beforeAll(async () => {
  modelDir = await e2eModelDir();
  reference = await EngineReference.load(modelDir);
});

afterAll(async () => {
  await reference?.close();
});

describe("filesystem store, two worker processes", () => {
  let cluster: TwoWorkerCluster | undefined;

  beforeAll(async () => {
    cluster = await startTwoWorkerCluster(modelDir);
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  test("a mixed 2,000-line batch (chat and completion lines interleaved) matches the engine alone", async () => {
    const { coordinator, workers } = cluster!;
    const api = batchApi(coordinator.httpUrl, API_KEY);
    const lines = mixedLines(2_000, { model: E2E_MODEL });
    const kinds = (url: string) => lines.filter((l) => l.url === url).length;
    expect([kinds("/v1/chat/completions"), kinds("/v1/completions")]).toEqual([1_334, 666]);
    const expected = await reference.expected(lines);

    const started = Date.now();
    const file = await api.upload(toJsonl(lines));
    // The batch's endpoint is the chat one; a third of its lines name /v1/completions.
    const batch = await api.createBatch(file.id, "/v1/chat/completions", { metadata: { test: "e2e-batch" } });
    const progress: number[] = [];
    const done = await api.waitUntil(
      batch.id,
      "finished",
      (seen) => {
        if (seen.status === "in_progress") progress.push(seen.progress?.lines_done ?? 0);
        return ["completed", "failed", "expired", "cancelled"].includes(seen.status);
      },
      150_000,
    );
    const seconds = (Date.now() - started) / 1000;

    expect(done.status, JSON.stringify(done.errors)).toBe("completed");
    expect(done.endpoint).toBe("/v1/chat/completions");
    expect(done.request_counts).toEqual({ total: 2_000, completed: 2_000, failed: 0 });
    expect(done.error_file_id).toBeNull();
    expect(done.metadata).toEqual({ test: "e2e-batch" });
    const output = parseJsonl(await api.fileContent(done.output_file_id));
    expect(output).toHaveLength(2_000);
    expect(output.map((l) => l.custom_id)).toEqual(lines.map((l) => l.custom_id));
    expectEveryLineOnce(lines, output);
    // Each body is the object its line's url asks for (chat.completion / text_completion)
    // and holds the completion the engine alone gives that request.
    expectMatchesReference(lines, output, expected);
    expect(output.filter((l) => l.response!.body.object === "text_completion")).toHaveLength(666);
    // Usage in the batch object adds up the lines' usage.
    const completionTokens = output.reduce((n, l) => n + l.response!.body.usage.completion_tokens, 0);
    expect(done.usage.output_tokens).toBe(completionTokens);
    // The batch was observed while it ran (progress lines are reported before the end).
    expect(progress.some((n) => n > 0 && n < 2_000)).toBe(true);
    // Both worker processes did part of the work, and nothing ran twice.
    const perWorker = await Promise.all(workers.map(async (w) => metricValue(await w.metrics(), "batchgen_worker_lines_done_total")));
    expect(Math.min(...perWorker), `lines done per worker: ${perWorker.join(", ")}`).toBeGreaterThan(0);
    expect(perWorker[0]! + perWorker[1]!).toBe(2_000);
    // Prompt tokens the workers' engines served from their prefix caches reach the batch
    // (Usage over gRPC) and add up to the workers' own counters.
    const cached = await Promise.all(workers.map(async (w) => metricValue(await w.metrics(), "batchgen_worker_prompt_tokens_cached_total")));
    expect(done.progress?.prompt_tokens_cached).toBe(cached[0]! + cached[1]!);
    expect(done.progress?.prompt_tokens_cached).toBeGreaterThan(0);
    console.log(`2,000 mixed lines on 2 CPU worker processes in ${seconds.toFixed(1)} s; lines per worker: ${perWorker.join(", ")}`);
  });
});

describe("S3-compatible store (s3rver), one worker started by the CLI", () => {
  let s3: S3rverHandle;
  let settings: ClusterSettings;
  let coordinator: Awaited<ReturnType<typeof startInProcessCoordinator>>;
  let worker: WorkerProcess;

  beforeAll(async () => {
    s3 = await startS3rver();
    settings = clusterSettings(s3.url("e2e"));
    const objects = new S3ObjectStore({
      bucket: s3.bucket,
      prefix: "e2e",
      endpoint: s3.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: s3.credentials,
    });
    coordinator = await startInProcessCoordinator(coordinatorOptions(settings, { shardLines: 50 }), { objects });
    worker = spawnWorker("cli-worker", { coordinator: coordinator.grpcAddress, modelDir, viaCli: true });
    await worker.connected();
  });

  afterAll(async () => {
    await worker?.stop();
    await coordinator?.stop();
    await s3?.stop();
    settings?.cleanup();
  });

  test("a 300-line batch stores its input, result parts and output in the bucket", async () => {
    const api = batchApi(coordinator.httpUrl, API_KEY);
    const lines = chatLines(300, { model: E2E_MODEL, prefix: "s3" });
    const expected = await reference.expected(lines);
    const file = await api.upload(toJsonl(lines));
    const batch = await api.createBatch(file.id, "/v1/chat/completions");
    const done = await api.waitForStatus(batch.id, ["completed", "failed", "expired", "cancelled"], 60_000);
    expect(done.status, JSON.stringify(done.errors)).toBe("completed");
    expect(done.request_counts).toEqual({ total: 300, completed: 300, failed: 0 });
    const output = parseJsonl(await api.fileContent(done.output_file_id));
    expect(output.map((l) => l.custom_id)).toEqual(lines.map((l) => l.custom_id));
    expectMatchesReference(lines, output, expected);

    // Everything went through the S3 server: the upload, the results, the output file.
    const writes = s3.requests.filter((r) => r.startsWith("PUT ") || r.startsWith("POST "));
    expect(writes.some((r) => r.includes(`/${s3.bucket}/e2e/`))).toBe(true);
    expect(writes.some((r) => r.includes("/parts/"))).toBe(true);
    expect(s3.requests.some((r) => r.startsWith("GET ") && r.includes(`/${s3.bucket}/e2e/files/`))).toBe(true);
  });
});
