// Embedding requests (pooling "last" / "mean") on the CPU backend, deterministic mode:
// the pooled vector of a prompt is the same whether it runs alone in one step or
// chunked over many steps beside generations, shares a cached prefix, or is preempted
// and recomputed under KV pressure (the mean restarts with the recompute); "last" is
// the final-norm hidden state of the last position (the head applied to it gives
// prompt_logits' last row).
// Against sentence-transformers: test/embeddings-reference.test.ts.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { Engine, InvalidArgumentError, type EngineLoadOptions } from "../ts/index.js";
import { makeModel } from "../ts/make-model.js";

let root: string;
let modelDir: string;
const engines: Engine[] = [];

async function open(options: Partial<EngineLoadOptions> = {}): Promise<Engine> {
  const engine = await Engine.load({ modelDir, threads: 2, kvCacheBlocks: 256, maxModelLen: 256, blockSize: 16, deterministic: true, ...options });
  engines.push(engine);
  return engine;
}

function tokens(count: number, seed: number): number[] {
  let x = seed >>> 0;
  return Array.from({ length: count }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return 3 + (x % 990);
  });
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "bg-embed-"));
  modelDir = join(root, "tiny-llama");
  await makeModel({ dir: modelDir, preset: "tiny-llama", seed: 3 });
});

afterAll(async () => {
  await Promise.all(engines.map((e) => e.close()));
  await rm(root, { recursive: true, force: true });
});

describe("embedding requests", () => {
  const prompts = [tokens(1, 1), tokens(17, 2), tokens(70, 3), tokens(150, 4), [...tokens(48, 5), ...tokens(30, 6)], [...tokens(48, 5), ...tokens(9, 7)]];

  it("give the same vectors alone in one step as chunked beside generations, sharing prefixes and preempted", async () => {
    const alone = await open({ maxBatchTokens: 512, enablePrefixCaching: false });
    const want = new Map<string, Float32Array>();
    for (const pooling of ["last", "mean"] as const) {
      for (const [i, prompt] of prompts.entries()) {
        const r = await alone.generate({ id: `${pooling}-${i}`, prompt, pooling });
        expect(r).toMatchObject({ finishReason: "stop", tokens: [], completionTokens: 0, promptTokens: prompt.length });
        expect(r.embedding!.length).toBe(alone.model.hiddenSize);
        want.set(`${pooling}-${i}`, r.embedding!);
      }
    }
    // 16-token steps and 24 blocks of 16: chunked prefills, and generations that outgrow the cache force
    // preemptions (maxSeqs above the 1 sequence of 256 tokens the cache holds lets them all in).
    const busy = await open({ maxBatchTokens: 16, kvCacheBlocks: 24, maxModelLen: 256, maxSeqs: 64 });
    const generations = Array.from({ length: 6 }, (_, i) => busy.generate({ id: `g${i}`, prompt: tokens(40, 50 + i), maxTokens: 60, temperature: 0, ignoreEos: true }));
    const embeds = (["last", "mean"] as const).flatMap((pooling) => prompts.map((prompt, i) => busy.generate({ id: `${pooling}-${i}`, prompt, pooling })));
    const results = await Promise.all(embeds);
    for (const g of await Promise.all(generations)) expect(g.completionTokens).toBe(60);
    expect(busy.stats().preemptions).toBeGreaterThan(0);
    for (const r of results) {
      expect(r.finishReason, r.id).toBe("stop");
      expect(maxAbsDiff(r.embedding!, want.get(r.id)!), r.id).toBeLessThan(1e-5);
    }
    // Mean and last differ (a multi-token prompt): the pooling is not ignored.
    expect(maxAbsDiff(want.get("mean-2")!, want.get("last-2")!)).toBeGreaterThan(1e-3);
  });

  it("a mean embedding preempted mid-prefill restarts its sum: the same vector as alone", async () => {
    const prompt = tokens(150, 21);
    const alone = await (await open()).generate({ prompt, pooling: "mean" });
    // 4-token steps: the embedding's prefill spans ~50 steps while a generation grows
    // beside it; 13 blocks of 16 cannot hold both, so the newer (the embedding) is preempted
    // (the derived cap, one 200-token sequence, would run them one after the other).
    const tight = await open({ maxBatchTokens: 4, kvCacheBlocks: 13, maxModelLen: 200, maxSeqs: 4 });
    const gen = tight.generate({ prompt: tokens(20, 22), maxTokens: 100, temperature: 0, ignoreEos: true });
    const embedded = await tight.generate({ prompt, pooling: "mean" });
    await gen;
    expect(embedded.preemptions).toBeGreaterThan(0);
    expect(maxAbsDiff(embedded.embedding!, alone.embedding!)).toBeLessThan(1e-5);
  });

  it("last pooling is the final-norm hidden state the head turns into the last position's logits", async () => {
    const engine = await open();
    const prompt = tokens(33, 9);
    const { embedding } = await engine.generate({ prompt, pooling: "last" });
    const vocab = engine.model.vocabSize;
    const last = (await engine.promptLogits(prompt)).subarray((prompt.length - 1) * vocab);
    // tiny-llama's lm_head (f32, untied): logits[v] = hidden . lm_head[v].
    const file = await readFile(join(modelDir, "model.safetensors"));
    const headerLen = Number(file.readBigUInt64LE(0));
    const header = JSON.parse(file.subarray(8, 8 + headerLen).toString("utf8")) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    const head = header["lm_head.weight"]!;
    expect(head.dtype).toBe("F32");
    const [rows, cols] = head.shape as [number, number];
    expect([rows, cols]).toEqual([vocab, embedding!.length]);
    const base = 8 + headerLen + head.data_offsets[0];
    let worst = 0, scale = 0;
    for (let v = 0; v < rows; v++) {
      let dot = 0;
      for (let j = 0; j < cols; j++) dot += embedding![j]! * file.readFloatLE(base + 4 * (v * cols + j));
      worst = Math.max(worst, Math.abs(dot - last[v]!));
      scale = Math.max(scale, Math.abs(last[v]!));
    }
    expect(worst / scale).toBeLessThan(1e-4);
  });

  it("take a prompt that fills the context (nothing is generated) and refuse one beyond it", async () => {
    const engine = await open({ maxModelLen: 64 });
    const full = await engine.generate({ prompt: tokens(64, 11), pooling: "mean" });
    expect(full.finishReason).toBe("stop");
    await expect(engine.generate({ prompt: tokens(65, 11), pooling: "mean" })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(engine.generate({ prompt: tokens(4, 11), pooling: "cls" as "mean" })).rejects.toThrow(/pooling/);
  });
});
