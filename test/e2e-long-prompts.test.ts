// Acceptance (issue 9): leases that cannot starve or loop. One worker process (real CPU
// engine, the e2e model, 512-token context) gets a batch of 24 lines of 200 KB each, a
// batch of one 8 MiB line and a batch of ordinary lines, all at once. Prompts are made
// off the event loop and a prompt that cannot fit the context is refused before it is
// tokenized, so heartbeats stay on time: every long line ends quickly as a
// context_length_exceeded line error, the ordinary batch completes beside them, the
// worker keeps its one session, and no shard is leased twice.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { batchApi } from "./support/batch-api.js";
import { parseJsonl } from "./support/batch-output.js";
import { chatLines, toJsonl } from "./support/batch-requests.js";
import { API_KEY, clusterSettings, coordinatorOptions, spawnWorker, startInProcessCoordinator, type WorkerProcess } from "./support/e2e-cluster.js";
import { E2E_MODEL, e2eModelDir } from "./support/e2e-model.js";
import { metricValue } from "./support/prometheus-text.js";

const FINAL = ["completed", "failed", "expired", "cancelled"];
const cleanups: Array<() => Promise<void> | void> = [];

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function longLine(customId: string, bytes: number): string {
  const filler = "lorem ipsum dolor sit amet ".repeat(Math.ceil(bytes / 27)).slice(0, bytes);
  return JSON.stringify({
    custom_id: customId,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: E2E_MODEL, messages: [{ role: "user", content: filler }], max_tokens: 8 },
  });
}

describe("long prompts on one worker", () => {
  let modelDir: string;
  beforeAll(async () => {
    modelDir = await e2eModelDir();
  });

  test("24 lines of 200 KB and one 8 MiB line end as line errors; a batch beside them completes; nothing is re-leased", async () => {
    const settings = clusterSettings();
    cleanups.push(() => settings.cleanup());
    const c = await startInProcessCoordinator(coordinatorOptions(settings, { shardLines: 100, models: [E2E_MODEL] }));
    cleanups.push(() => c.stop());
    const worker: WorkerProcess = spawnWorker("long-prompts", { coordinator: c.grpcAddress, modelDir, maxSeqs: 8 });
    cleanups.push(() => worker.stop());
    await worker.connected();
    const api = batchApi(c.httpUrl, API_KEY);

    const started = Date.now();
    const many = Array.from({ length: 24 }, (_, i) => longLine(`long-${i}`, 200 * 1024));
    // The line as a whole stays within the default 8 MiB line limit.
    const huge = longLine("huge", 8 * 1024 * 1024 - 256);
    expect(Buffer.byteLength(huge)).toBeLessThanOrEqual(8 * 1024 * 1024);
    const normal = chatLines(30, { model: E2E_MODEL, prefix: "beside" });
    const batches = [];
    for (const content of [many.join("\n") + "\n", huge + "\n", toJsonl(normal)]) {
      const file = await api.upload(content);
      batches.push(await api.createBatch(file.id, "/v1/chat/completions"));
    }
    const [a, b, n] = await Promise.all(batches.map((x) => api.waitForStatus(x.id, FINAL, 90_000)));
    const elapsedMs = Date.now() - started;

    for (const [done, total] of [[a!, 24], [b!, 1]] as const) {
      expect(done.status).toBe("completed");
      expect(done.request_counts).toEqual({ total, completed: 0, failed: total });
      const errors = parseJsonl(await api.fileContent(done.error_file_id));
      expect(errors).toHaveLength(total);
      for (const e of errors) {
        expect(e.error?.code).toBe("context_length_exceeded");
        expect(e.error?.message).toMatch(/maximum context length is 512 tokens/);
      }
    }
    expect(n!.status).toBe("completed");
    expect(n!.request_counts).toEqual({ total: 30, completed: 30, failed: 0 });
    expect(parseJsonl(await api.fileContent(n!.output_file_id)).map((l) => l.custom_id)).toEqual(normal.map((l) => l.custom_id));

    // One session from start to end (no stream dropped for late heartbeats), no shard leased twice.
    expect(worker.sessionAddresses()).toHaveLength(1);
    const text = await (await fetch(`${c.httpUrl}/metrics`)).text();
    expect(metricValue(text, "batchgen_coordinator_shards_retried_total")).toBe(0);
    expect(metricValue(text, "batchgen_coordinator_lease_expiries_total")).toBe(0);
    expect(metricValue(text, "batchgen_coordinator_shard_failures_total")).toBe(0);
    console.log(`long prompts: 3 batches (24 x 200 KB, 1 x 8 MiB, 30 ordinary lines) final in ${elapsedMs} ms`);
    expect(elapsedMs).toBeLessThan(60_000);
  });
});
