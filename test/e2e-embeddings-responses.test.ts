// Acceptance (issue 16): /v1/embeddings and /v1/responses batches through a
// coordinator process and a worker process on the real CPU engine, driven by the
// official `openai` npm SDK (files.create -> batches.create -> batches.retrieve ->
// files.content), every output body then parsed by the official openai Python SDK's
// pydantic types (CreateEmbeddingResponse, Response: required fields, literals and
// nested types checked, not just JSON):
//  - a 10,000-line embeddings batch (strings, lists of strings, token ids, base64,
//    dimensions) completes with one unit-length vector per input, and sampled lines
//    equal what the engine alone gives;
//  - responses lines with text and message input, instructions, max_output_tokens and
//    text.format give the SDK's Response objects whose output_text is what the engine
//    alone generates for the same conversation.
import { spawnSync } from "node:child_process";
import { createReadStream, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, expect, test } from "vitest";
import { expectEveryLineOnce, parseJsonl, type OutputLine } from "./support/batch-output.js";
import { toJsonl, type RequestLine } from "./support/batch-requests.js";
import { API_KEY, startProcessCluster, type ProcessCluster } from "./support/e2e-cluster.js";
import { E2E_MODEL, e2eModelDir } from "./support/e2e-model.js";
import { EngineReference } from "./support/engine-reference.js";

let modelDir: string;
let cluster: ProcessCluster;
let dir: string;
let client: OpenAI;

beforeAll(async () => {
  modelDir = await e2eModelDir();
  dir = mkdtempSync(join(tmpdir(), "bg-e2e-emb-"));
  cluster = await startProcessCluster(modelDir);
  client = new OpenAI({ apiKey: API_KEY, baseURL: `${cluster.coordinator.httpUrl}/v1`, maxRetries: 0 });
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function runWithSdk(lines: RequestLine[], name: string, timeoutMs: number): Promise<{ batch: OpenAI.Batches.Batch; output: OutputLine[] }> {
  const path = join(dir, `${name}.jsonl`);
  writeFileSync(path, toJsonl(lines));
  const file = await client.files.create({ file: createReadStream(path), purpose: "batch" });
  const created = await client.batches.create({ input_file_id: file.id, endpoint: lines[0]!.url as "/v1/embeddings", completion_window: "24h" });
  let batch = created;
  const deadline = Date.now() + timeoutMs;
  while (!["completed", "failed", "expired", "cancelled"].includes(batch.status)) {
    if (Date.now() > deadline) throw new Error(`batch still ${batch.status} after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
    batch = await client.batches.retrieve(created.id);
  }
  expect(batch.status, JSON.stringify(batch.errors)).toBe("completed");
  expect(batch.error_file_id).toBeNull();
  const content = await client.files.content(batch.output_file_id!);
  return { batch, output: parseJsonl(await content.text()) };
}

const PYTHON_PARSE = `
import base64, json, struct, sys
from openai.types import CreateEmbeddingResponse
from openai.types.responses import Response
args = json.load(sys.stdin)
kind = {"embeddings": CreateEmbeddingResponse, "responses": Response}[args["kind"]]
out = []
for body in args["bodies"]:
    if args["kind"] == "embeddings":
        # base64 vectors decoded as the SDK's embeddings.create decodes them (float32, little-endian).
        for d in body["data"]:
            if isinstance(d["embedding"], str):
                d["embedding"] = struct.unpack("<%df" % (len(base64.b64decode(d["embedding"])) // 4), base64.b64decode(d["embedding"]))
    parsed = kind.model_validate(body, strict=False)
    if args["kind"] == "responses":
        out.append({"id": parsed.id, "status": parsed.status, "output_text": parsed.output_text, "output_tokens": parsed.usage.output_tokens})
    else:
        out.append({"count": len(parsed.data), "model": parsed.model, "prompt_tokens": parsed.usage.prompt_tokens})
print(json.dumps(out))
`;

/** The official Python SDK's types parse every body (pydantic validation). */
function pythonSdkParse(kind: "embeddings" | "responses", bodies: unknown[]): Array<Record<string, unknown>> {
  const venv = join(import.meta.dirname, "../.venv/bin/python");
  const python = process.env.BATCHGEN_PYTHON ?? (existsSync(venv) ? venv : "python3");
  const r = spawnSync(python, ["-c", PYTHON_PARSE], { input: JSON.stringify({ kind, bodies }), encoding: "utf8", maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`openai SDK parse failed:\n${r.stderr}`);
  return JSON.parse(r.stdout) as Array<Record<string, unknown>>;
}

const WORDS = ["alpha", "batch", "delta", "engine", "fleet", "lease", "model", "shard", "token", "worker"];
const text = (i: number) => `${WORDS[i % 10]} ${WORDS[(i * 3) % 10]} ${WORDS[(i * 7) % 10]} #${i}`;

function embeddingLine(i: number): RequestLine {
  const body: Record<string, unknown> = { model: E2E_MODEL, input: text(i) };
  if (i % 5 === 0) body.input = [text(i), text(i + 1)];
  else if (i % 13 === 0) body.input = [1, 40, 41, 42, 43];
  if (i % 7 === 0) body.encoding_format = "base64";
  if (i % 11 === 0) body.dimensions = 16;
  return { custom_id: `emb-${i}`, method: "POST", url: "/v1/embeddings", body };
}

function vectorOf(e: number[] | string): number[] {
  if (typeof e !== "string") return e;
  const bytes = Buffer.from(e, "base64");
  return Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
}

test("a 10,000-line embeddings batch completes; the SDKs read every line", async () => {
  const lines = Array.from({ length: 10_000 }, (_, i) => embeddingLine(i));
  const started = Date.now();
  const { batch, output } = await runWithSdk(lines, "embeddings", 240_000);
  console.log(`10,000 embeddings lines: ${((Date.now() - started) / 1000).toFixed(1)} s from upload to output (2-core CI box, tiny e2e model)`);
  expect(batch.request_counts).toEqual({ total: 10_000, completed: 10_000, failed: 0 });
  expectEveryLineOnce(lines, output);
  const bodies = output.map((l) => l.response!.body as unknown as { data: Array<{ index: number; embedding: number[] | string }>; usage: { prompt_tokens: number } });
  const parsed = pythonSdkParse("embeddings", bodies);
  const byId = new Map(output.map((l, i) => [l.custom_id, { body: bodies[i]!, parsed: parsed[i]! }]));
  const hidden = vectorOf(byId.get("emb-1")!.body.data[0]!.embedding).length;
  for (const line of lines) {
    const { body, parsed: p } = byId.get(line.custom_id)!;
    const inputs = Array.isArray(line.body.input) && typeof line.body.input[0] === "string" ? (line.body.input as string[]).length : 1;
    expect(p).toMatchObject({ count: inputs, model: E2E_MODEL });
    expect(body.data.map((d) => d.index)).toEqual([...Array(inputs).keys()]);
    for (const d of body.data) {
      const v = vectorOf(d.embedding);
      expect(v.length).toBe(line.body.dimensions ?? hidden);
      expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    }
  }
  // Sampled lines equal the engine alone (mean pooling, normalized: the e2e model has no modules.json).
  const reference = await EngineReference.load(modelDir);
  try {
    for (const i of [1, 2, 5, 7, 13, 26, 9_999]) {
      const line = lines[i]!;
      const inputs = (Array.isArray(line.body.input) && typeof line.body.input[0] !== "number" ? line.body.input : [line.body.input]) as Array<string | number[]>;
      const got = byId.get(line.custom_id)!.body.data.map((d) => vectorOf(d.embedding));
      for (const [k, input] of inputs.entries()) {
        // dimensions: the first values, normalized again.
        const full = await reference.embedding(input);
        const cut = full.slice(0, (line.body.dimensions as number | undefined) ?? full.length);
        const want = cut.map((x) => x / Math.hypot(...cut));
        const cos = got[k]!.reduce((s, x, j) => s + x * want[j]!, 0);
        expect(cos, `${line.custom_id} input ${k}`).toBeGreaterThanOrEqual(0.9999);
      }
    }
  } finally {
    await reference.close();
  }
}, 400_000);

function responsesLines(): RequestLine[] {
  const lines: RequestLine[] = [];
  for (let i = 0; i < 30; i++) {
    const body: Record<string, unknown> = { model: E2E_MODEL, temperature: 0, max_output_tokens: 4 + (i % 9) };
    if (i % 3 === 0) body.input = text(i);
    else body.input = [
      { role: "user", content: text(i) },
      { role: "assistant", content: [{ type: "output_text", text: "ok" }] },
      { type: "message", role: "user", content: [{ type: "input_text", text: text(i + 1) }] },
    ];
    if (i % 2 === 0) body.instructions = "Answer briefly.";
    if (i === 4) body.text = { format: { type: "json_schema", name: "answer", strict: true, schema: { type: "object", properties: { a: { type: "string" } }, required: ["a"], additionalProperties: false } } };
    lines.push({ custom_id: `resp-${i}`, method: "POST", url: "/v1/responses", body });
  }
  return lines;
}

/** The same conversation as a chat line, for the engine-alone reference. */
function asChat(line: RequestLine): RequestLine {
  const b = line.body as { input: string | Array<{ role: string; content: string | Array<{ text: string }> }>; instructions?: string; max_output_tokens: number };
  const messages = typeof b.input === "string" ? [{ role: "user", content: b.input }] : b.input.map((m) => ({ role: m.role, content: typeof m.content === "string" ? m.content : m.content.map((p) => p.text).join("") }));
  if (b.instructions) messages.unshift({ role: "system", content: b.instructions });
  return { ...line, url: "/v1/chat/completions", body: { model: E2E_MODEL, messages, max_tokens: b.max_output_tokens, temperature: 0 } };
}

test("responses lines: the SDK's Response type parses every line; output_text is the engine's answer", async () => {
  const lines = responsesLines();
  const { batch, output } = await runWithSdk(lines, "responses", 120_000);
  expect(batch.request_counts).toEqual({ total: lines.length, completed: lines.length, failed: 0 });
  expectEveryLineOnce(lines, output);
  const bodies = output.map((l) => l.response!.body as unknown as Record<string, unknown>);
  const parsed = pythonSdkParse("responses", bodies);
  const reference = await EngineReference.load(modelDir);
  let expected;
  try {
    expected = await reference.expected(lines.filter((l) => l.custom_id !== "resp-4").map(asChat));
  } finally {
    await reference.close();
  }
  output.forEach((l, i) => {
    const body = bodies[i]!;
    const line = lines.find((x) => x.custom_id === l.custom_id)!;
    expect(body).toMatchObject({ object: "response", model: E2E_MODEL, instructions: line.body.instructions ?? null, max_output_tokens: line.body.max_output_tokens });
    expect(parsed[i]!.id).toMatch(/^resp_/);
    if (l.custom_id === "resp-4") {
      expect(body.text).toMatchObject({ format: { type: "json_schema", name: "answer", strict: true } });
      // Decoded under the schema's grammar: a finished answer is the object it asks for.
      if (parsed[i]!.status === "completed") expect(Object.keys(JSON.parse(parsed[i]!.output_text as string) as object)).toEqual(["a"]);
      return;
    }
    const want = expected.get(l.custom_id)!;
    expect(parsed[i]).toMatchObject({ output_text: want.text, status: want.finishReason === "stop" ? "completed" : "incomplete", output_tokens: want.completionTokens });
  });
}, 300_000);
