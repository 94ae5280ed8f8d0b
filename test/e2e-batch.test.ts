// Acceptance (issue 3), end to end: batches across a coordinator and TWO worker
// processes on the real CPU engine complete; output.jsonl holds every custom_id
// exactly once, in input order, and every completion equals what the engine alone
// answers for the same request. Then one batch runs against an S3-compatible server
// (s3rver) instead of the filesystem store.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { S3ObjectStore } from "@batchgen/core";
import { startS3rver, type S3rverHandle } from "../packages/core/test/support/s3rver.js";
import { batchApi } from "./support/batch-api.js";
import { expectEveryLineOnce, expectMatchesReference, parseJsonl } from "./support/batch-output.js";
import { chatLines, completionLines, toJsonl, type RequestLine } from "./support/batch-requests.js";
import {
  API_KEY,
  clusterSettings,
  coordinatorOptions,
  spawnWorker,
  startInProcessCoordinator,
  type ClusterSettings,
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
  let settings: ClusterSettings;
  let coordinator: Awaited<ReturnType<typeof startInProcessCoordinator>>;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    settings = clusterSettings();
    coordinator = await startInProcessCoordinator(coordinatorOptions(settings));
    workers.push(spawnWorker("worker-a", { coordinator: coordinator.grpcAddress, modelDir }));
    workers.push(spawnWorker("worker-b", { coordinator: coordinator.grpcAddress, modelDir }));
    await Promise.all(workers.map((w) => w.connected()));
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await coordinator?.stop();
    settings?.cleanup();
  });

  test("a 2,000-line chat batch and a 2,000-line completion batch, side by side, match the engine alone", async () => {
    const api = batchApi(coordinator.httpUrl, API_KEY);
    const chat = chatLines(2_000, { model: E2E_MODEL });
    const completion = completionLines(2_000, { model: E2E_MODEL });
    const expected = await reference.expected([...chat, ...completion]);

    const started = Date.now();
    const submit = async (lines: RequestLine[]) => {
      const file = await api.upload(toJsonl(lines));
      return api.createBatch(file.id, lines[0]!.url, { metadata: { test: "e2e-batch" } });
    };
    const [chatBatch, completionBatch] = await Promise.all([submit(chat), submit(completion)]);
    const progress: number[] = [];
    const finished = (id: string) =>
      api.waitUntil(
        id,
        "finished",
        (seen) => {
          if (seen.status === "in_progress") progress.push(seen.progress?.lines_done ?? 0);
          return ["completed", "failed", "expired", "cancelled"].includes(seen.status);
        },
        150_000,
      );
    const [chatDone, completionDone] = await Promise.all([finished(chatBatch.id), finished(completionBatch.id)]);
    const seconds = (Date.now() - started) / 1000;

    for (const [done, lines] of [
      [chatDone, chat],
      [completionDone, completion],
    ] as const) {
      expect(done.status, JSON.stringify(done.errors)).toBe("completed");
      expect(done.request_counts).toEqual({ total: 2_000, completed: 2_000, failed: 0 });
      expect(done.error_file_id).toBeNull();
      expect(done.metadata).toEqual({ test: "e2e-batch" });
      const output = parseJsonl(await api.fileContent(done.output_file_id));
      expect(output).toHaveLength(2_000);
      expect(output.map((l) => l.custom_id)).toEqual(lines.map((l) => l.custom_id));
      expectEveryLineOnce(lines, output);
      expectMatchesReference(lines, output, expected);
      // Usage in the batch object adds up the lines' usage.
      const completionTokens = output.reduce((n, l) => n + l.response!.body.usage.completion_tokens, 0);
      expect(done.usage.output_tokens).toBe(completionTokens);
    }
    // The batch was observed while it ran (progress lines are reported before the end).
    expect(progress.some((n) => n > 0 && n < 2_000)).toBe(true);
    // Both worker processes did part of the work, and nothing ran twice.
    const done = await Promise.all(workers.map(async (w) => metricValue(await w.metrics(), "batchgen_worker_lines_done_total")));
    expect(Math.min(...done), `lines done per worker: ${done.join(", ")}`).toBeGreaterThan(0);
    expect(done[0]! + done[1]!).toBe(4_000);
    console.log(`4,000 lines (2 batches) on 2 CPU worker processes in ${seconds.toFixed(1)} s; lines per worker: ${done.join(", ")}`);
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
