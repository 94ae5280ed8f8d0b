// The official `openai` npm SDK, unchanged, drives the coordinator: files.create ->
// batches.create -> batches.retrieve (until completed) -> files.content, plus list,
// cancel and its error classes. Work is done by a scripted gRPC worker (a test double,
// named as such); the end-to-end run on the real worker and engine is in
// openai-sdk-real-worker.test.ts.
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ScriptedWorker } from "./support/scripted-worker.js";
import { chatLine, jsonl, KEY_A, KEY_B, MODEL, startCluster, WORKER_TOKEN, type Cluster } from "./support/harness.js";

let cluster: Cluster;
let worker: ScriptedWorker;
let client: OpenAI;

beforeAll(async () => {
  cluster = await startCluster({ shardLines: 16 });
  worker = new ScriptedWorker({ address: cluster.grpc(), model: MODEL, token: WORKER_TOKEN, credit: 64 });
  await worker.start();
  client = new OpenAI({ apiKey: KEY_A, baseURL: `${cluster.url()}/v1`, maxRetries: 0 });
});

afterAll(async () => {
  worker?.kill();
  await cluster?.stop();
});

describe("official openai SDK (scripted worker)", () => {
  it("files.create -> batches.create -> batches.retrieve -> files.content", async () => {
    const lines = Array.from({ length: 40 }, (_, i) => chatLine(`sdk-${i}`));
    const file = await client.files.create({ file: await toFile(Buffer.from(jsonl(lines)), "batch.jsonl"), purpose: "batch" });
    expect(file.id).toMatch(/^file_/);
    expect(file.purpose).toBe("batch");
    const batch = await client.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
      metadata: { job: "sdk" },
    });
    expect(batch.status).toBe("validating");
    let current = batch;
    const deadline = Date.now() + 30_000;
    while (!["completed", "failed", "expired", "cancelled"].includes(current.status) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      current = await client.batches.retrieve(batch.id);
    }
    expect(current.status).toBe("completed");
    expect(current.request_counts).toEqual({ total: 40, completed: 40, failed: 0 });
    expect(current.metadata).toEqual({ job: "sdk" });
    const content = await client.files.content(current.output_file_id!);
    const out = (await content.text()).trim().split("\n").map((l) => JSON.parse(l));
    expect(out.map((l) => l.custom_id)).toEqual(lines.map((_, i) => `sdk-${i}`));
    expect(out[5].response.body.choices[0].message.content).toBe("echo:sdk-5");

    const page = await client.batches.list({ limit: 10 });
    expect(page.data.map((b) => b.id)).toContain(batch.id);
    const retrievedFile = await client.files.retrieve(current.output_file_id!);
    expect(retrievedFile.purpose).toBe("batch_output");
  });

  it("raises the SDK's error classes for 401, 404 and 400", async () => {
    const wrong = new OpenAI({ apiKey: "sk-wrong", baseURL: `${cluster.url()}/v1`, maxRetries: 0 });
    await expect(wrong.batches.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    await expect(client.batches.retrieve("batch_000000000000ffffffffffffffffffff")).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const badPurpose = client.files.create({ file: await toFile(Buffer.from(jsonl([chatLine("x")])), "x.jsonl"), purpose: "fine-tune" });
    await expect(badPurpose).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    const other = new OpenAI({ apiKey: KEY_B, baseURL: `${cluster.url()}/v1`, maxRetries: 0 });
    const mine = await client.files.create({ file: await toFile(Buffer.from(jsonl([chatLine("y")])), "y.jsonl"), purpose: "batch" });
    await expect(other.files.retrieve(mine.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });
});
