// Real answers through the whole pipeline: examples/questions.jsonl (30 simple
// questions) as a batch through the coordinator, a worker process and the CPU
// engine on the real Gemma 3 270M GGUF. The answers hold the expected facts for
// the questions a 270M pretrained model gets right (capitals, sums, colours, a
// few more); the rest are only required to be text.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { realGgufPath } from "../packages/engine/test/real-gguf.js";
import { batchApi } from "./support/batch-api.js";
import { parseJsonl } from "./support/batch-output.js";
import {
  API_KEY,
  clusterSettings,
  coordinatorOptions,
  spawnWorker,
  startInProcessCoordinator,
  type ClusterSettings,
  type WorkerProcess,
} from "./support/e2e-cluster.js";

const QUESTIONS = join(dirname(fileURLToPath(import.meta.url)), "../examples/questions.jsonl");

const FACTS: Record<string, RegExp> = {
  "capital-france": /\bParis\b/,
  "capital-japan": /\bTokyo\b/,
  "capital-germany": /\bBerlin\b/,
  "capital-spain": /\bMadrid\b/,
  "capital-egypt": /\bCairo\b/,
  "capital-china": /\bBeijing\b/,
  "capital-uk": /\bLondon\b/,
  "sum-2-3": /= 5\b/,
  "sum-10-5": /= 15\b/,
  "sum-7-8": /= 15\b/,
  "colour-sky": /\bblue\b/i,
  "colour-grass": /\bgreen\b/i,
  "colour-blood": /\bred\b/i,
  "largest-planet": /\bJupiter\b/,
  "opposite-hot": /\bcold\b/i,
  "bees-make": /\bhoney\b/i,
};

let settings: ClusterSettings;
let coordinator: Awaited<ReturnType<typeof startInProcessCoordinator>>;
let worker: WorkerProcess;

beforeAll(async () => {
  const gguf = realGgufPath();
  settings = clusterSettings();
  coordinator = await startInProcessCoordinator(coordinatorOptions(settings, { shardLines: 10 }));
  worker = spawnWorker("real-worker", { coordinator: coordinator.grpcAddress, modelDir: gguf, modelName: "gemma-3-270m" });
  await worker.connected(1, 120_000);
}, 180_000);

afterAll(async () => {
  await worker?.stop();
  await coordinator?.stop();
  settings?.cleanup();
});

describe("real questions on the real model, end to end", () => {
  test("examples/questions.jsonl completes, and the answers hold the facts", async () => {
    const input = readFileSync(QUESTIONS, "utf8");
    const lines = input.trim().split("\n").map((l) => JSON.parse(l) as { custom_id: string });
    expect(lines).toHaveLength(30);
    const api = batchApi(coordinator.httpUrl, API_KEY);
    const file = await api.upload(input, "questions.jsonl");
    const batch = await api.createBatch(file.id, "/v1/completions");
    const done = await api.waitForStatus(batch.id, ["completed", "failed", "expired", "cancelled"], 400_000);
    expect(done.status, JSON.stringify(done.errors)).toBe("completed");
    expect(done.request_counts).toEqual({ total: 30, completed: 30, failed: 0 });
    const output = parseJsonl(await api.fileContent(done.output_file_id));
    const answers = new Map(output.map((l) => [l.custom_id, (l.response!.body as { choices: Array<{ text: string }> }).choices[0]!.text]));
    console.log([...answers].map(([id, a]) => `${id}: ${JSON.stringify(a)}`).join("\n"));
    for (const [id, fact] of Object.entries(FACTS)) expect(answers.get(id), id).toMatch(fact);
    // The stop string "\n" ends each answer at its line.
    for (const a of answers.values()) expect(a).not.toContain("\n");
    expect(Object.keys(FACTS).length).toBeGreaterThanOrEqual(15);
  }, 420_000);
});
