// Acceptance (issue 3): the official `openai` npm SDK (7.59.0), unchanged, drives a
// batch against a coordinator process served by a worker process on the real CPU
// engine: files.create -> batches.create -> batches.retrieve (until completed) ->
// files.content, for both endpoints.
import { mkdtempSync, rmSync, writeFileSync, createReadStream } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, expect, test } from "vitest";
import { expectEveryLineOnce, expectMatchesReference, parseJsonl } from "./support/batch-output.js";
import { chatLines, completionLines, toJsonl, type RequestLine } from "./support/batch-requests.js";
import { API_KEY, startProcessCluster, type ProcessCluster } from "./support/e2e-cluster.js";
import { E2E_MODEL, e2eModelDir } from "./support/e2e-model.js";
import { EngineReference } from "./support/engine-reference.js";

let modelDir: string;
let cluster: ProcessCluster;
let dir: string;

beforeAll(async () => {
  modelDir = await e2eModelDir();
  dir = mkdtempSync(join(tmpdir(), "bg-e2e-sdk-"));
  cluster = await startProcessCluster(modelDir);
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function runWithSdk(client: OpenAI, lines: RequestLine[], name: string): Promise<{ batch: OpenAI.Batches.Batch; output: string }> {
  const path = join(dir, `${name}.jsonl`);
  writeFileSync(path, toJsonl(lines));
  const file = await client.files.create({ file: createReadStream(path), purpose: "batch" });
  expect(file).toMatchObject({ object: "file", purpose: "batch", filename: `${name}.jsonl` });
  expect(file.bytes).toBe(Buffer.byteLength(toJsonl(lines)));

  const created = await client.batches.create({
    input_file_id: file.id,
    endpoint: lines[0]!.url,
    completion_window: "24h",
    metadata: { suite: "e2e-openai-sdk", name },
  });
  expect(created).toMatchObject({ object: "batch", input_file_id: file.id, endpoint: lines[0]!.url, completion_window: "24h" });
  expect(["validating", "in_progress"]).toContain(created.status);

  let batch = created;
  const deadline = Date.now() + 60_000;
  while (!["completed", "failed", "expired", "cancelled"].includes(batch.status)) {
    if (Date.now() > deadline) throw new Error(`batch still ${batch.status} after 60 s`);
    await new Promise((r) => setTimeout(r, 200));
    batch = await client.batches.retrieve(created.id);
  }
  expect(batch.status, JSON.stringify(batch.errors)).toBe("completed");
  expect(batch.output_file_id).toBeTruthy();
  const content = await client.files.content(batch.output_file_id!);
  return { batch, output: await content.text() };
}

test("files.create -> batches.create -> batches.retrieve -> files.content, chat and completions", async () => {
  const client = new OpenAI({ apiKey: API_KEY, baseURL: `${cluster.coordinator.httpUrl}/v1`, maxRetries: 0 });
  const chat = chatLines(60, { model: E2E_MODEL, prefix: "sdk-chat" });
  const completion = completionLines(40, { model: E2E_MODEL, prefix: "sdk-cmpl" });
  const reference = await EngineReference.load(modelDir);
  let expected;
  try {
    expected = await reference.expected([...chat, ...completion]);
  } finally {
    await reference.close();
  }

  const [c, p] = await Promise.all([runWithSdk(client, chat, "chat"), runWithSdk(client, completion, "completion")]);
  for (const [{ batch, output }, lines] of [
    [c, chat],
    [p, completion],
  ] as const) {
    expect(batch.request_counts).toEqual({ total: lines.length, completed: lines.length, failed: 0 });
    expect(batch.metadata).toMatchObject({ suite: "e2e-openai-sdk" });
    for (const stamp of [batch.created_at, batch.in_progress_at, batch.finalizing_at, batch.completed_at]) {
      expect(typeof stamp).toBe("number");
    }
    const parsed = parseJsonl(output);
    expect(parsed.map((l) => l.custom_id)).toEqual(lines.map((l) => l.custom_id));
    expectEveryLineOnce(lines, parsed);
    expectMatchesReference(lines, parsed, expected);
  }

  // The output file is a file of this tenant too, and both batches are listed.
  const outputFile = await client.files.retrieve(c.batch.output_file_id!);
  expect(outputFile).toMatchObject({ id: c.batch.output_file_id, object: "file", purpose: "batch_output" });
  const listed: string[] = [];
  for await (const b of client.batches.list({ limit: 1 })) listed.push(b.id);
  expect(listed).toEqual(expect.arrayContaining([c.batch.id, p.batch.id]));
});
