// LoRA adapters through the whole pipeline (coordinator + worker process + CPU engine):
// a batch whose lines name three adapters and the base model. The coordinator queues it
// under the base model (it knows the adapters from the worker's Hello), each output line
// says which model answered, the batch object lists the adapters, and the worker's
// metrics count lines and tokens per adapter. The worker holds two adapters at once, so
// the third is read in on demand (LRU) while the batch runs.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { batchApi, type BatchApi } from "./support/batch-api.js";
import { parseJsonl } from "./support/batch-output.js";
import { chatLines } from "./support/batch-requests.js";
import { API_KEY, clusterSettings, coordinatorOptions, spawnWorker, startInProcessCoordinator, type ClusterSettings, type RunningCoordinator, type WorkerProcess } from "./support/e2e-cluster.js";
import { writeE2eLora } from "./support/e2e-lora.js";
import { E2E_MODEL, e2eModelDir } from "./support/e2e-model.js";

const ADAPTERS = ["support-bot", "legal-tone", "pirate"];
const MODELS = [E2E_MODEL, ...ADAPTERS];
const LINES = 40;

let settings: ClusterSettings;
let coordinator: RunningCoordinator;
let worker: WorkerProcess;
let api: BatchApi;
let scratch: string;

beforeAll(async () => {
  const modelDir = await e2eModelDir();
  scratch = await mkdtemp(join(tmpdir(), "batchgen-e2e-lora-"));
  const loras = await Promise.all(ADAPTERS.map(async (name, i) => ({ name, path: await writeE2eLora(modelDir, join(scratch, name), 11 + i) })));
  settings = clusterSettings();
  coordinator = await startInProcessCoordinator(coordinatorOptions(settings, { shardLines: 8 }));
  worker = spawnWorker("lora-worker", { coordinator: coordinator.grpcAddress, modelDir, loras, maxLoras: 2 });
  await worker.connected();
  api = batchApi(coordinator.httpUrl, API_KEY);
});

afterAll(async () => {
  await worker?.stop();
  await coordinator?.stop();
  settings?.cleanup();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe("LoRA adapters end to end", () => {
  test("lines naming three adapters and the base: each output line names the model that answered", async () => {
    const lines = chatLines(LINES, { model: E2E_MODEL, prefix: "lora", minTokens: 3, maxTokens: 6 }).map((l, i) => ({
      ...l,
      body: { ...l.body, model: MODELS[i % MODELS.length]!, temperature: 0 },
    }));
    const file = (await api.upload(lines.map((l) => JSON.stringify(l)).join("\n") + "\n")).id;
    const created = await api.createBatch(file, "/v1/chat/completions");
    const done = await api.waitForStatus(created.id, ["completed", "failed", "expired", "cancelled"], 120_000);
    expect(done.status, JSON.stringify(done.errors)).toBe("completed");
    expect(done.request_counts).toEqual({ total: LINES, completed: LINES, failed: 0 });
    expect(done.model).toBe(E2E_MODEL);
    expect(done.adapters).toEqual(ADAPTERS);

    const output = parseJsonl(await api.fileContent(done.output_file_id)) as Array<{
      custom_id: string;
      response: { status_code: number; body: { model: string; usage: { completion_tokens: number } } };
    }>;
    expect(output).toHaveLength(LINES);
    const tokens = new Map<string, number>();
    for (const o of output) {
      const i = Number(o.custom_id.slice("lora-".length));
      expect(o.response.status_code).toBe(200);
      expect(o.response.body.model, o.custom_id).toBe(MODELS[i % MODELS.length]);
      tokens.set(o.response.body.model, (tokens.get(o.response.body.model) ?? 0) + o.response.body.usage.completion_tokens);
    }

    // Lines and tokens per adapter, as the worker counted them.
    const metrics = await worker.metrics();
    for (const a of ADAPTERS) {
      expect(metrics).toContain(`batchgen_worker_lora_lines_total{adapter="${a}"} ${LINES / MODELS.length}`);
      expect(metrics).toContain(`batchgen_worker_lora_generation_tokens_total{adapter="${a}"} ${tokens.get(a)}`);
    }
    // Three adapters through two slots: at least one was read in again after an eviction.
    const loads = Number(/^batchgen_worker_lora_loads (\d+)/m.exec(metrics)?.[1]);
    expect(loads).toBeGreaterThanOrEqual(3);

    // The fleet view names the adapters the worker serves and, from its heartbeats,
    // those its engine holds now: two slots, both taken by the batch's adapters.
    const deadline = Date.now() + 10_000;
    let row: { adapters: string[]; adapters_loaded: string[] } | undefined;
    while (Date.now() < deadline) {
      const res = await fetch(`${coordinator.httpUrl}/v1/fleet`, { headers: { authorization: `Bearer ${API_KEY}` } });
      const fleet = (await res.json()) as { data: Array<{ id: string; adapters: string[]; adapters_loaded: string[] }> };
      row = fleet.data.find((w) => w.id === "lora-worker");
      if (row && row.adapters_loaded.length === 2) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(row?.adapters).toEqual(ADAPTERS);
    expect(row?.adapters_loaded).toHaveLength(2);
    for (const a of row?.adapters_loaded ?? []) expect(ADAPTERS).toContain(a);
  });

  test("a line naming a model the fleet does not serve fails validation with its line number", async () => {
    const lines = chatLines(2, { model: E2E_MODEL, prefix: "bad", minTokens: 2, maxTokens: 3 });
    lines[1] = { ...lines[1]!, body: { ...lines[1]!.body, model: "no-such-adapter" } };
    const file = (await api.upload(lines.map((l) => JSON.stringify(l)).join("\n") + "\n")).id;
    const created = await api.createBatch(file, "/v1/chat/completions");
    const done = await api.waitForStatus(created.id, ["completed", "failed", "expired", "cancelled"], 60_000);
    expect(done.status).toBe("failed");
    expect(done.errors!.data.map((e) => [e.line, e.code])).toEqual([[2, "mismatched_model"]]);
  });
});
