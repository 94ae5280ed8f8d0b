// Acceptance (issue 16, embeddings): /v1/embeddings lines run by the CPU engine as
// prefill-only requests give the vectors sentence-transformers gives on the same
// random-weight Qwen3 model with the same pooling configuration, cosine >= 0.9999:
// last-token pooling then Normalize (Qwen3-Embedding's modules.json and
// 1_Pooling/config.json, in the form that model publishes them), and mean pooling
// without Normalize. The lines go through the worker's LineRunner (tokenizer,
// pooling configuration, dimensions, encoding) on an engine whose 24-token step
// budget chunks the longer inputs over several steps beside a generation line.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { Engine, makeModel } from "@batchgen/engine";
import { LineRunner, loadWorkerTokenizer, readEmbeddingModel, type LineOutcome } from "@batchgen/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BYTE_LEVEL_VOCAB_SIZE, writeByteLevelTokenizer } from "./support/byte-level-tokenizer.js";
import { sharedModelDir } from "./support/shared-model-dir.js";

const TEXTS = [
  "hello",
  "The quick brown fox jumps over the lazy dog.",
  "a",
  "Embeddings of a decoder model: the last token's hidden state, normalized, for Qwen3-Embedding; the mean over the tokens otherwise.",
  "1234567890 !@#$%^&*()",
];

interface Variant {
  name: string;
  pooling: Record<string, boolean>;
  normalize: boolean;
}

const VARIANTS: Variant[] = [
  { name: "last-normalized", pooling: { pooling_mode_lasttoken: true }, normalize: true },
  { name: "mean", pooling: { pooling_mode_mean_tokens: true }, normalize: false },
];

/** A random tiny Qwen3 with the byte-level tokenizer and a sentence-transformers configuration. */
function variantDir(v: Variant): Promise<string> {
  return sharedModelDir(`embed-qwen3-${v.name}-v1`, async (dir) => {
    await makeModel({ dir, preset: "tiny-qwen3", seed: 5, overrides: { vocab_size: BYTE_LEVEL_VOCAB_SIZE, max_position_embeddings: 256 } });
    await writeByteLevelTokenizer(dir);
    // sentence-transformers pads a batch: give the tokenizer a pad token.
    const configPath = join(dir, "tokenizer_config.json");
    const tokConfig = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
    await writeFile(configPath, JSON.stringify({ ...tokConfig, pad_token: "<unk>" }));
    const hidden = (JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as { hidden_size: number }).hidden_size;
    const modules = [
      { idx: 0, name: "0", path: "", type: "sentence_transformers.models.Transformer" },
      { idx: 1, name: "1", path: "1_Pooling", type: "sentence_transformers.models.Pooling" },
      ...(v.normalize ? [{ idx: 2, name: "2", path: "2_Normalize", type: "sentence_transformers.models.Normalize" }] : []),
    ];
    await writeFile(join(dir, "modules.json"), JSON.stringify(modules));
    await writeFile(join(dir, "sentence_bert_config.json"), JSON.stringify({ max_seq_length: 256, do_lower_case: false }));
    await mkdir(join(dir, "1_Pooling"));
    const modes = ["cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens", "lasttoken"];
    const pooling = Object.fromEntries(modes.map((m) => [`pooling_mode_${m}`, v.pooling[`pooling_mode_${m}`] === true]));
    await writeFile(join(dir, "1_Pooling", "config.json"), JSON.stringify({ word_embedding_dimension: hidden, ...pooling, include_prompt: true }));
    if (v.normalize) await mkdir(join(dir, "2_Normalize"));
  });
}

// One interpreter for every model directory (importing sentence-transformers takes seconds).
const REFERENCE = `
import json, sys
from sentence_transformers import SentenceTransformer
args = json.load(sys.stdin)
out = []
for d in args["dirs"]:
    model = SentenceTransformer(d, device="cpu")
    out.append(model.encode(args["texts"], batch_size=len(args["texts"]), convert_to_numpy=True).astype("float64").tolist())
print(json.dumps(out))
`;

function python(): string {
  const venv = join(import.meta.dirname, "../.venv/bin/python");
  return process.env.BATCHGEN_PYTHON ?? (existsSync(venv) ? venv : "python3");
}

function sentenceTransformers(dirs: string[], texts: string[]): number[][][] {
  const r = spawnSync(python(), ["-c", REFERENCE], {
    input: JSON.stringify({ dirs, texts }),
    encoding: "utf8",
    env: { ...process.env, HF_HUB_OFFLINE: "1", TRANSFORMERS_VERBOSITY: "error", TOKENIZERS_PARALLELISM: "false" },
  });
  if (r.status !== 0) throw new Error(`sentence-transformers reference failed:\n${r.stderr}`);
  return JSON.parse(r.stdout) as number[][][];
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return ab / Math.sqrt(aa * bb);
}

const norm = (v: ArrayLike<number>) => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));

interface EmbeddingsBody {
  object: string;
  data: Array<{ object: string; index: number; embedding: number[] | string }>;
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

function body(outcome: LineOutcome): EmbeddingsBody {
  if (outcome.kind !== "response") throw new Error(`line failed: ${JSON.stringify(outcome)}`);
  return JSON.parse(outcome.bodyJson) as EmbeddingsBody;
}

const engines: Engine[] = [];
const references = new Map<string, number[][]>();

beforeAll(async () => {
  const dirs = await Promise.all(VARIANTS.map(variantDir));
  sentenceTransformers(dirs, TEXTS).forEach((vectors, i) => references.set(VARIANTS[i]!.name, vectors));
}, 600_000);

afterAll(async () => {
  await Promise.all(engines.map((e) => e.close()));
});

describe.each(VARIANTS)("embeddings against sentence-transformers: $name", (variant) => {
  let dir: string;
  let runner: LineRunner;
  let reference: number[][];

  beforeAll(async () => {
    dir = await variantDir(variant);
    reference = references.get(variant.name)!;
    const engine = await Engine.load({ modelDir: dir, threads: 1, kvCacheBlocks: 64, maxBatchTokens: 24 });
    engines.push(engine);
    const embedding = await readEmbeddingModel(dir);
    expect(embedding).toMatchObject({ ok: true, pooling: variant.normalize ? "last" : "mean", normalize: variant.normalize });
    runner = new LineRunner({ engine, tokenizer: await loadWorkerTokenizer(dir), modelName: "qwen3-embed", embedding });
  }, 600_000);

  it("gives sentence-transformers' vectors (cosine >= 0.9999), a list input beside a generation", async () => {
    const line = JSON.stringify({ model: "qwen3-embed", input: TEXTS });
    const generation = JSON.stringify({ model: "qwen3-embed", prompt: "Once upon a time", max_tokens: 8, temperature: 0 });
    const [embedded, generated] = await Promise.all([runner.run("e1", "/v1/embeddings", line), runner.run("g1", "/v1/completions", generation)]);
    expect(generated.kind).toBe("response");
    const b = body(embedded);
    expect(b).toMatchObject({ object: "list", model: "qwen3-embed" });
    expect(b.data.map((d) => [d.object, d.index])).toEqual(TEXTS.map((_, i) => ["embedding", i]));
    expect(b.usage.prompt_tokens).toBeGreaterThan(TEXTS.join("").length);
    const cosines = b.data.map((d, i) => cosine(d.embedding as number[], reference[i]!));
    const other = references.get(VARIANTS.find((v) => v !== variant)!.name)!;
    console.log(`${variant.name}: cosine to sentence-transformers min ${Math.min(...cosines).toFixed(7)}; ` +
      `to the other pooling's vectors max ${Math.max(...b.data.map((d, i) => cosine(d.embedding as number[], other[i]!))).toFixed(4)}`);
    b.data.forEach((d, i) => {
      const got = d.embedding as number[];
      expect(got.length).toBe(reference[i]!.length);
      expect(cosines[i], `input ${i}`).toBeGreaterThanOrEqual(0.9999);
      // Same scale too: unit vectors when normalized, the mean's own length otherwise.
      expect(norm(got) / norm(reference[i]!)).toBeCloseTo(1, 3);
    });
  });

  it("a string input alone gives the same vector; base64 decodes to it; dimensions cut (then normalize when the model does)", async () => {
    const one = body(await runner.run("e2", "/v1/embeddings", JSON.stringify({ model: "m", input: TEXTS[1] })));
    expect(cosine(one.data[0]!.embedding as number[], reference[1]!)).toBeGreaterThanOrEqual(0.9999);
    const b64 = body(await runner.run("e3", "/v1/embeddings", JSON.stringify({ model: "m", input: TEXTS[1], encoding_format: "base64" })));
    const bytes = Buffer.from(b64.data[0]!.embedding as string, "base64");
    const decoded = Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
    expect(decoded).toEqual((one.data[0]!.embedding as number[]).map((x) => Math.fround(x)));
    const cut = body(await runner.run("e4", "/v1/embeddings", JSON.stringify({ model: "m", input: TEXTS[1], dimensions: 8 })));
    const short = cut.data[0]!.embedding as number[];
    expect(short.length).toBe(8);
    const head = reference[1]!.slice(0, 8);
    expect(cosine(short, head)).toBeGreaterThanOrEqual(0.9999);
    if (variant.normalize) expect(norm(short)).toBeCloseTo(1, 5);
    else expect(norm(short) / norm(head)).toBeCloseTo(1, 3);
  });

  it("refuses dimensions beyond the model's and inputs beyond its context, naming them", async () => {
    const wide = await runner.run("e5", "/v1/embeddings", JSON.stringify({ model: "m", input: "x", dimensions: 100_000 }));
    expect(wide).toMatchObject({ kind: "error", code: "invalid_request", message: expect.stringContaining("'dimensions' is 100000") });
    const long = await runner.run("e6", "/v1/embeddings", JSON.stringify({ model: "m", input: ["ok", "y".repeat(400)] }));
    expect(long).toMatchObject({ kind: "error", code: "context_length_exceeded", message: expect.stringContaining("input[1]") });
  });
});
