// Acceptance: the official `openai` npm SDK, unchanged, drives files.create ->
// batches.create -> batches.retrieve (until completed) -> files.content against the
// coordinator, with the real worker process (packages/worker, `batchgen-worker`) running
// the real engine on CPU over the random-weight tiny-gemma model. Greedy lines are
// checked against what the engine alone produces for the same prompt.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Engine } from "@batchgen/engine";
import { Tokenizer } from "@batchgen/engine/tokenizer";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KEY_A, startCluster, waitFor, WORKER_TOKEN, type Cluster } from "./support/harness.js";
import { tinyGemmaDir } from "../../../test/support/tiny-model.js";

const WORKER_MAIN = fileURLToPath(new URL("../../worker/dist/main.js", import.meta.url));
const MODEL_NAME = "tiny-gemma";
const MAX_MODEL_LEN = 512;

let cluster: Cluster;
let modelDir: string;
let worker: ChildProcess;
let workerLog = "";

beforeAll(async () => {
  modelDir = await tinyGemmaDir();
  cluster = await startCluster({ shardLines: 6 });
  worker = spawn(
    process.execPath,
    [WORKER_MAIN, "--coordinator", cluster.grpc(), "--model-dir", modelDir, "--model-name", MODEL_NAME, "--threads", "1",
      "--max-seqs", "4", "--max-model-len", String(MAX_MODEL_LEN), "--kv-cache-blocks", "256", "--metrics-port", "0",
      "--metrics-host", "127.0.0.1", "--grace-ms", "1000"],
    { env: { ...process.env, BATCHGEN_WORKER_TOKEN: WORKER_TOKEN, LOG_LEVEL: "warn" }, stdio: ["ignore", "ignore", "pipe"] },
  );
  worker.stderr!.on("data", (d) => (workerLog += String(d)));
  // Batches need a worker of their model: wait for its Hello.
  await waitFor(
    `the worker to connect (worker log: ${workerLog})`,
    async () => /batchgen_coordinator_workers_connected\{model="[^"]+"\} 1/.test(await fetch(`${cluster.url()}/metrics`).then((r) => r.text())),
    60_000,
    200,
  );
}, 120_000);

afterAll(async () => {
  if (worker && worker.exitCode === null) {
    const exited = new Promise((r) => worker.once("exit", r));
    worker.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
    if (worker.exitCode === null) worker.kill("SIGKILL");
  }
  await cluster?.stop();
});

describe("official openai SDK with the real worker and CPU engine", () => {
  it("files.create -> batches.create -> batches.retrieve -> files.content", async () => {
    const client = new OpenAI({ apiKey: KEY_A, baseURL: `${cluster.url()}/v1`, maxRetries: 0 });
    const requests = Array.from({ length: 14 }, (_, i) => ({
      custom_id: `sdk-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: {
        model: MODEL_NAME,
        messages: [{ role: "user", content: `Say something about ${i}.` }],
        max_tokens: 6,
        ...(i % 2 === 0 ? { temperature: 0 } : { temperature: 0.9, top_p: 0.9, seed: i }),
      },
    }));
    const jsonl = requests.map((r) => JSON.stringify(r)).join("\n") + "\n";
    const file = await client.files.create({ file: await toFile(Buffer.from(jsonl), "requests.jsonl"), purpose: "batch" });
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    let current = batch;
    const seen = new Set<string>([batch.status]);
    const deadline = Date.now() + 120_000;
    while (!["completed", "failed", "expired", "cancelled"].includes(current.status)) {
      if (Date.now() > deadline) throw new Error(`batch not done: ${JSON.stringify(current)}; worker log: ${workerLog}`);
      await new Promise((r) => setTimeout(r, 200));
      current = await client.batches.retrieve(batch.id);
      seen.add(current.status);
    }
    expect(current.status, workerLog).toBe("completed");
    expect(seen.has("in_progress") || seen.has("finalizing") || seen.has("completed")).toBe(true);
    expect(current.request_counts).toEqual({ total: 14, completed: 14, failed: 0 });
    expect(current.error_file_id ?? null).toBeNull();

    const text = await (await client.files.content(current.output_file_id!)).text();
    const out = text.trim().split("\n").map((l) => JSON.parse(l));
    expect(out.map((l) => l.custom_id)).toEqual(requests.map((r) => r.custom_id));

    const tokenizer = await Tokenizer.fromDir(modelDir);
    const engine = await Engine.load({ modelDir, device: "cpu", threads: 1, maxSeqs: 2, maxModelLen: MAX_MODEL_LEN, kvCacheBlocks: 128 });
    try {
      for (const [i, line] of out.entries()) {
        expect(line.error).toBeNull();
        expect(line.response.status_code).toBe(200);
        const body = line.response.body;
        expect(body.object).toBe("chat.completion");
        expect(body.model).toBe(MODEL_NAME);
        expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
        expect(body.usage.completion_tokens).toBeGreaterThan(0);
        if (i % 2 !== 0) continue;
        const prompt = tokenizer.encode(tokenizer.applyChatTemplate(requests[i]!.body.messages, { addGenerationPrompt: true }), { addSpecialTokens: false });
        const alone = await engine.generate({ prompt, maxTokens: 6, temperature: 0 });
        expect(body.choices[0].message.content).toBe(tokenizer.decode(alone.tokens, { skipSpecialTokens: true }));
        expect(body.usage.prompt_tokens).toBe(alone.promptTokens);
      }
    } finally {
      await engine.close();
    }
    expect(current.usage?.output_tokens).toBe(out.reduce((s, l) => s + l.response.body.usage.completion_tokens, 0));
  }, 180_000);
});
