// Acceptance: lines with response_format (a json_schema made by the SDK's own
// zodResponseFormat, and json_object), logprobs / top_logprobs and n > 1 run through
// the coordinator and the real worker (CPU engine, random-weight tiny-gemma), and the
// official `openai` SDK parses the output lines with its own types and helpers:
// parseChatCompletion validates every choice's content against the zod schema. A
// line with n = 4 gives the choices four n = 1 lines with seeds seed..seed+3 give.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import OpenAI, { toFile } from "openai";
import { zodResponseFormat } from "openai/helpers/zod";
import { parseChatCompletion } from "openai/lib/parser";
import type { ChatCompletion } from "openai/resources/chat/completions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { KEY_A, startCluster, waitFor, WORKER_TOKEN, type Cluster } from "./support/harness.js";
import { tinyGemmaDir } from "../../../test/support/tiny-model.js";

const WORKER_MAIN = fileURLToPath(new URL("../../worker/dist/main.js", import.meta.url));
const MODEL_NAME = "tiny-gemma";

const Person = z.object({
  name: z.string(),
  age: z.number().int(),
  role: z.enum(["admin", "user", "guest"]),
  address: z.object({ city: z.string(), zip: z.string().nullable() }),
  tags: z.array(z.object({ k: z.string(), v: z.boolean() })),
});

let cluster: Cluster;
let worker: ChildProcess;
let workerLog = "";

beforeAll(async () => {
  const modelDir = await tinyGemmaDir();
  cluster = await startCluster({ shardLines: 4 });
  worker = spawn(
    process.execPath,
    [WORKER_MAIN, "--coordinator", cluster.grpc(), "--model-dir", modelDir, "--model-name", MODEL_NAME, "--threads", "1",
      "--max-seqs", "8", "--max-model-len", "512", "--kv-cache-blocks", "256", "--metrics-port", "0",
      "--metrics-host", "127.0.0.1", "--grace-ms", "1000"],
    { env: { ...process.env, BATCHGEN_WORKER_TOKEN: WORKER_TOKEN, LOG_LEVEL: "warn" }, stdio: ["ignore", "ignore", "pipe"] },
  );
  worker.stderr!.on("data", (d) => (workerLog += String(d)));
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

describe("official openai SDK: structured outputs, logprobs and n", () => {
  it("parses every output line with its own types and zod schema", async () => {
    const client = new OpenAI({ apiKey: KEY_A, baseURL: `${cluster.url()}/v1`, maxRetries: 0 });
    const responseFormat = zodResponseFormat(Person, "person");
    const messages = (i: number) => [{ role: "user" as const, content: `Extract the person from line ${i}.` }];
    const structured = Array.from({ length: 8 }, (_, i) => ({
      custom_id: `s-${i}`,
      method: "POST" as const,
      url: "/v1/chat/completions" as const,
      body:
        i < 6
          ? { model: MODEL_NAME, messages: messages(i), max_tokens: 120, seed: i, logprobs: true, top_logprobs: 3, n: 2, response_format: responseFormat }
          : { model: MODEL_NAME, messages: messages(i), max_tokens: 60, seed: i, logprobs: true, response_format: { type: "json_object" as const } },
    }));
    // n = 4 with seed 100, and the same request four times alone with seeds 100..103.
    const sampled = (id: string, n: number, seed: number) => ({
      custom_id: id,
      method: "POST" as const,
      url: "/v1/chat/completions" as const,
      body: { model: MODEL_NAME, messages: messages(99), max_tokens: 12, temperature: 1, seed, n },
    });
    const requests = [...structured, sampled("n4", 4, 100), ...[0, 1, 2, 3].map((i) => sampled(`alone-${i}`, 1, 100 + i))];
    const jsonl = requests.map((r) => JSON.stringify(r)).join("\n") + "\n";
    const file = await client.files.create({ file: await toFile(Buffer.from(jsonl), "requests.jsonl"), purpose: "batch" });
    let batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    const deadline = Date.now() + 150_000;
    while (!["completed", "failed", "expired", "cancelled"].includes(batch.status)) {
      if (Date.now() > deadline) throw new Error(`batch not done: ${JSON.stringify(batch)}; worker log: ${workerLog}`);
      await new Promise((r) => setTimeout(r, 250));
      batch = await client.batches.retrieve(batch.id);
    }
    expect(batch.status, `${JSON.stringify(batch.errors)} ${workerLog}`).toBe("completed");
    expect(batch.request_counts).toEqual({ total: 13, completed: 13, failed: 0 });

    const text = await (await client.files.content(batch.output_file_id!)).text();
    const lines = text.trim().split("\n").map((l) => JSON.parse(l) as { custom_id: string; response: { body: ChatCompletion } });
    expect(lines.map((l) => l.custom_id)).toEqual(requests.map((r) => r.custom_id));
    const n4 = lines[8]!.response.body;
    const alone = lines.slice(9).map((l) => l.response.body);
    expect(n4.choices.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    expect(n4.choices.map((c) => c.message.content)).toEqual(alone.map((b) => b.choices[0]!.message.content));
    expect(new Set(n4.choices.map((c) => c.message.content)).size).toBeGreaterThan(1);
    expect(n4.usage!.completion_tokens).toBe(alone.reduce((s, b) => s + b.usage!.completion_tokens, 0));
    expect(n4.usage!.prompt_tokens).toBe(alone[0]!.usage!.prompt_tokens);
    for (const [i, line] of lines.slice(0, 8).entries()) {
      const completion: ChatCompletion = line.response.body;
      if (i < 6) {
        const parsed = parseChatCompletion(completion, { model: MODEL_NAME, messages: messages(i), response_format: responseFormat });
        expect(parsed.choices).toHaveLength(2);
        for (const choice of parsed.choices) {
          expect(Person.parse(choice.message.parsed)).toEqual(choice.message.parsed);
          const content = choice.logprobs!.content!;
          expect(content.length).toBeGreaterThan(5);
          for (const t of content) {
            expect(t.top_logprobs).toHaveLength(3);
            expect(t.logprob).toBeLessThanOrEqual(0);
            expect(t.top_logprobs[0]!.logprob).toBeGreaterThanOrEqual(t.top_logprobs[2]!.logprob);
          }
        }
        const tokens = parsed.choices.reduce((s, c) => s + c.logprobs!.content!.length, 0);
        expect(completion.usage!.completion_tokens).toBeGreaterThanOrEqual(tokens);
        expect(completion.usage!.completion_tokens).toBeLessThanOrEqual(tokens + 2); // + an EOS per choice
      } else {
        const value = JSON.parse(completion.choices[0]!.message.content!) as unknown;
        expect(typeof value === "object" && value !== null && !Array.isArray(value)).toBe(true);
        expect(completion.choices[0]!.logprobs!.content![0]!.top_logprobs).toEqual([]);
      }
    }
  }, 200_000);
});
