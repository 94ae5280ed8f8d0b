// The worker against the real coordinator (Redis, folder storage) with the real CPU
// engine on the random-weight tiny-gemma: every output body matches what the engine
// alone produces for that request, and SIGTERM hands back unfinished lines.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createLogger } from "@batchgen/core";
import { Engine } from "@batchgen/engine";
import { Tokenizer } from "@batchgen/engine/tokenizer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWorker, type Worker } from "../src/worker.js";
import { fileLines, getBatch, startCoordinator, submitBatch, waitForBatch, type Harness } from "./support/coordinator-harness.js";
import { tinyGemmaDir } from "../../../test/support/tiny-model.js";

const MAX_MODEL_LEN = 1024;
let modelDir: string;
let reference: Engine;
let tokenizer: Tokenizer;
let h: Harness;

beforeAll(async () => {
  modelDir = await tinyGemmaDir();
  tokenizer = await Tokenizer.fromDir(modelDir);
  reference = await Engine.load({ modelDir, device: "cpu", threads: 1, maxSeqs: 4, maxModelLen: MAX_MODEL_LEN, kvCacheBlocks: 512 });
  h = await startCoordinator({ shardLines: 4 });
});

afterAll(async () => {
  await h?.stop();
  await reference?.close();
});

function startWorker(extra: Record<string, unknown> = {}): Worker {
  return createWorker(
    {
      coordinator: h.grpcAddress,
      token: h.workerToken,
      modelDir,
      modelName: "tiny-gemma",
      threads: 1,
      maxSeqs: 4,
      maxModelLen: MAX_MODEL_LEN,
      kvCacheBlocks: 512,
      metrics: false,
      ...extra,
    },
    { logger: createLogger("worker", { level: "warn" }) },
  );
}

async function untilConnected(worker: Worker): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!worker.stats().connected) {
    if (Date.now() > deadline) throw new Error("worker did not connect");
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The parts of an OpenAI response body these tests read. */
interface ResponseBody {
  object: string;
  model: string;
  choices: Array<{ message?: { role: string; content: string }; text?: string; finish_reason: string }>;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

interface Sampling {
  max_tokens: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  seed?: number;
}

/** What the engine alone makes of a request: tokens decoded without special tokens. */
async function engineAlone(prompt: number[], s: Sampling): Promise<{ text: string; promptTokens: number; completionTokens: number; finish: string }> {
  const r = await reference.generate({
    prompt,
    maxTokens: s.max_tokens,
    temperature: s.temperature ?? 1,
    topP: s.top_p ?? 1,
    topK: s.top_k ?? 0,
    minP: s.min_p ?? 0,
    ...(s.seed !== undefined ? { seed: s.seed } : {}),
  });
  return { text: tokenizer.decode(r.tokens, { skipSpecialTokens: true }), promptTokens: r.promptTokens, completionTokens: r.completionTokens, finish: r.finishReason };
}

const samplings: Sampling[] = [
  { max_tokens: 12, temperature: 0 },
  { max_tokens: 10, temperature: 0.8, top_p: 0.9, top_k: 40, seed: 11 },
  { max_tokens: 8, temperature: 1, min_p: 0.05, seed: 12 },
  { max_tokens: 6, temperature: 0.5, seed: 13 },
];

describe("worker + coordinator + CPU engine", () => {
  it("chat lines: every body matches the engine alone on the same request", async () => {
    const worker = startWorker();
    await worker.start();
    try {
      await untilConnected(worker);
      const lines = Array.from({ length: 10 }, (_, i) => ({
        custom_id: `chat-${i}`,
        method: "POST",
        url: "/v1/chat/completions",
        body: {
          model: "tiny-gemma",
          messages: [
            ...(i % 3 === 0 ? [{ role: "system", content: "You are terse." }] : []),
            { role: "user", content: `Tell me about the number ${i}.` },
          ],
          ...samplings[i % samplings.length]!,
        },
      }));
      const id = await submitBatch(h, lines, "/v1/chat/completions");
      const done = await waitForBatch(h, id, (b) => b.status === "completed");
      expect(done.request_counts).toEqual({ total: 10, completed: 10, failed: 0 });
      const out = await fileLines<{ custom_id: string; response: { status_code: number; body: ResponseBody } }>(h, done.output_file_id!);
      expect(out.map((l) => l.custom_id)).toEqual(lines.map((l) => l.custom_id));
      for (const [i, line] of out.entries()) {
        const req = lines[i]!.body;
        const prompt = tokenizer.encode(tokenizer.applyChatTemplate(req.messages, { addGenerationPrompt: true }), { addSpecialTokens: false });
        const alone = await engineAlone(prompt, req);
        const body = line.response.body;
        expect(line.response.status_code).toBe(200);
        expect(body.object).toBe("chat.completion");
        expect(body.model).toBe("tiny-gemma");
        expect(body.choices[0]!.message).toMatchObject({ role: "assistant", content: alone.text });
        expect(body.choices[0]!.finish_reason).toBe(alone.finish === "length" ? "length" : "stop");
        expect(body.usage).toEqual({ prompt_tokens: alone.promptTokens, completion_tokens: alone.completionTokens, total_tokens: alone.promptTokens + alone.completionTokens });
      }
    } finally {
      await worker.stop(1_000);
    }
  });

  it("completion lines: bodies match the engine alone; stop strings cut the text; an over-long prompt fails alone", async () => {
    const worker = startWorker();
    await worker.start();
    try {
      await untilConnected(worker);
      const prompts = Array.from({ length: 6 }, (_, i) => `Once upon a time, number ${i}`);
      // A stop string taken from the middle of what the model says greedily for prompt 0.
      const greedy0 = await engineAlone(tokenizer.encode(prompts[0]!), { max_tokens: 20, temperature: 0 });
      const stopAt = Math.floor(greedy0.text.length / 2);
      const stop = greedy0.text.slice(stopAt, stopAt + 3);
      const cut = greedy0.text.indexOf(stop);
      expect(stop.length).toBeGreaterThan(0);
      const lines = [
        ...prompts.map((prompt, i) => ({
          custom_id: `cmpl-${i}`,
          method: "POST",
          url: "/v1/completions",
          body: { model: "tiny-gemma", prompt, ...(i === 0 ? { max_tokens: 20, temperature: 0, stop: [stop] } : samplings[i % samplings.length]!) },
        })),
        { custom_id: "too-long", method: "POST", url: "/v1/completions", body: { model: "tiny-gemma", prompt: "word ".repeat(1100), max_tokens: 4 } },
      ];
      const id = await submitBatch(h, lines, "/v1/completions");
      const done = await waitForBatch(h, id, (b) => b.status === "completed");
      expect(done.request_counts).toEqual({ total: 7, completed: 6, failed: 1 });
      const out = await fileLines<{ custom_id: string; response: { body: ResponseBody } }>(h, done.output_file_id!);
      expect(out.map((l) => l.custom_id)).toEqual(lines.slice(0, 6).map((l) => l.custom_id));
      for (const [i, line] of out.entries()) {
        const body = line.response.body;
        expect(body.object).toBe("text_completion");
        if (i === 0) {
          expect(body.choices[0]).toMatchObject({ text: greedy0.text.slice(0, cut), finish_reason: "stop" });
          expect(body.usage.completion_tokens).toBeLessThan(20);
          continue;
        }
        const alone = await engineAlone(tokenizer.encode(prompts[i]!), lines[i]!.body as Sampling);
        expect(body.choices[0]!.text).toBe(alone.text);
        expect(body.usage.completion_tokens).toBe(alone.completionTokens);
      }
      const errors = await fileLines<{ custom_id: string; response: unknown; error: { code: string; message: string } | null }>(h, done.error_file_id!);
      expect(errors).toHaveLength(1);
      expect(errors[0]!.custom_id).toBe("too-long");
      const err = errors[0]!.error ?? (errors[0]!.response as { body: { error: { code: string; message: string } } }).body.error;
      expect(err.code).toBe("context_length_exceeded");
      expect(err.message).toMatch(/maximum context length is 1024 tokens/);
    } finally {
      await worker.stop(1_000);
    }
  });

  it("SIGTERM: the worker process finishes what fits in the grace period, hands the rest back, exits 0; another worker completes the batch", async () => {
    // Lines 0-3 are short; 4-7 are long. The draining worker runs one sequence at a time,
    // so when it is told to stop the long lines are running or still waiting.
    const lines = Array.from({ length: 8 }, (_, i) => ({
      custom_id: `line-${i}`,
      method: "POST",
      url: "/v1/completions",
      body: { model: "tiny-gemma", prompt: `Count ${i}`, temperature: 0, max_tokens: i < 4 ? 2 : 400 },
    }));
    const main = fileURLToPath(new URL("../dist/main.js", import.meta.url));
    const child = spawn(
      process.execPath,
      [main, "--coordinator", h.grpcAddress, "--model-dir", modelDir, "--model-name", "tiny-gemma", "--threads", "1", "--max-seqs", "1",
        "--max-model-len", String(MAX_MODEL_LEN), "--kv-cache-blocks", "512", "--metrics-port", "0", "--grace-ms", "200"],
      { env: { ...process.env, BATCHGEN_WORKER_TOKEN: h.workerToken, LOG_LEVEL: "warn" }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      // The batch needs a worker of its model: wait until the child has said hello.
      let id: string | null = null;
      const deadline = Date.now() + 30_000;
      while (!id) {
        try {
          id = await submitBatch(h, lines, "/v1/completions");
          const b = await waitForBatch(h, id, (x) => x.status !== "validating");
          if (b.status === "failed") id = null;
        } catch {
          id = null;
        }
        if (!id) {
          if (Date.now() > deadline) throw new Error(`worker never connected: ${stderr}`);
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      const batchId = id;
      // The four short lines finish; the long ones are running or waiting.
      await waitForBatch(h, batchId, (b) => b.request_counts.completed >= 4, 30_000);
      const sentAt = Date.now();
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(Date.now() - sentAt).toBeLessThan(10_000);
      const afterDrain = await getBatch(h, batchId);
      expect(afterDrain.status).toBe("in_progress");
      expect(afterDrain.request_counts.completed).toBeGreaterThanOrEqual(4);
      expect(afterDrain.request_counts.completed).toBeLessThan(8);

      // The handed-back lines run on another worker; every line appears exactly once.
      const second = startWorker();
      await second.start();
      try {
        const done = await waitForBatch(h, batchId, (b) => b.status === "completed", 90_000);
        expect(done.request_counts).toEqual({ total: 8, completed: 8, failed: 0 });
        const out = await fileLines<{ custom_id: string; response: { body: ResponseBody } }>(h, done.output_file_id!);
        expect(out.map((l) => l.custom_id)).toEqual(lines.map((l) => l.custom_id));
        const alone = await Promise.all(lines.map((l, i) => engineAlone(tokenizer.encode(`Count ${i}`), { temperature: 0, max_tokens: l.body.max_tokens })));
        for (const [i, line] of out.entries()) expect(line.response.body.choices[0]!.text).toBe(alone[i]!.text);
      } finally {
        await second.stop(1_000);
      }
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});
