// The running-sequence cap derived from the KV cache (issue 11), and the host time
// per step the engine counts, on a random-weight tiny Llama (CPU backend).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { Engine, InvalidArgumentError, type EngineLoadOptions, type GenerateRequest } from "../ts/index.js";
import { makeModel } from "../ts/make-model.js";

let root: string;
let modelDir: string;
const engines: Engine[] = [];

async function open(options: Partial<EngineLoadOptions>): Promise<Engine> {
  const engine = await Engine.load({ modelDir, threads: 2, blockSize: 16, ...options });
  engines.push(engine);
  return engine;
}

// 16 lines of exactly 128 tokens: 64 prompt + 64 generated.
const lines: GenerateRequest[] = Array.from({ length: 16 }, (_, i) => ({
  id: `line-${i}`,
  prompt: Array.from({ length: 64 }, (_, j) => 3 + ((i * 131 + j * 17) % 990)),
  maxTokens: 64,
  ignoreEos: true,
}));

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "bg-max-seqs-"));
  modelDir = join(root, "tiny-llama");
  await makeModel({ dir: modelDir, preset: "tiny-llama", seed: 3 });
});

afterAll(async () => {
  await Promise.all(engines.map((e) => e.close()));
  await rm(root, { recursive: true, force: true });
});

describe("maxSeqs from the KV cache", () => {
  it("is the number of max_model_len sequences the cache holds, proportional to its blocks", async () => {
    // 128-token sequences take 8 blocks of 16.
    const small = await open({ kvCacheBlocks: 32, maxModelLen: 128 });
    const large = await open({ kvCacheBlocks: 96, maxModelLen: 128 });
    expect(small.model.maxSeqs).toBe(4);
    expect(large.model.maxSeqs).toBe(12);
    expect(small.model.maxSeqsSeqLen).toBe(128);
    expect(small.stats().maxSeqs).toBe(4);
    // A longer context: sized for 1,024-token sequences (64 blocks), not the whole context.
    const long = await open({ kvCacheBlocks: 640, maxModelLen: 4096 });
    expect(long.model.maxSeqsSeqLen).toBe(1024);
    expect(long.model.maxSeqs).toBe(10);
    // Never above the step's token budget (a sequence takes at least one token a step).
    const budget = await open({ kvCacheBlocks: 640, maxModelLen: 128, maxBatchTokens: 32 });
    expect(budget.model.maxSeqs).toBe(32);
  });

  it("an explicit maxSeqs wins, below or above the derived value", async () => {
    const below = await open({ kvCacheBlocks: 32, maxModelLen: 128, maxSeqs: 3 });
    const above = await open({ kvCacheBlocks: 32, maxModelLen: 128, maxSeqs: 20 });
    expect(below.model.maxSeqs).toBe(3);
    expect(above.model.maxSeqs).toBe(20);
    expect(below.model.maxSeqsSeqLen).toBe(0);
    await expect(open({ kvCacheBlocks: 32, maxSeqs: -1 })).rejects.toThrow(InvalidArgumentError);
  });

  it("a workload of max_model_len lines runs at the derived cap without preemption; twice the cap preempts", async () => {
    const derived = await open({ kvCacheBlocks: 32, maxModelLen: 128 });
    const results = await Promise.all(lines.map((r) => derived.generate(r)));
    const stats = derived.stats();
    expect(stats.preemptions).toBe(0);
    expect(results.every((r) => r.tokens.length === 64)).toBe(true);

    const doubled = await open({ kvCacheBlocks: 32, maxModelLen: 128, maxSeqs: 8 });
    const churned = await Promise.all(lines.map((r) => doubled.generate(r)));
    expect(doubled.stats().preemptions).toBeGreaterThan(0);
    for (let i = 0; i < lines.length; ++i) expect(churned[i]!.tokens).toEqual(results[i]!.tokens);

    // Host time per step is counted: inside step() outside the forward/sample calls,
    // and the gaps between consecutive steps (one fewer than the steps of a busy run at most).
    expect(stats.hostMs).toBeGreaterThan(0);
    expect(stats.hostGaps).toBeGreaterThan(0);
    expect(stats.hostGaps).toBeLessThan(stats.steps);
    expect(stats.hostGapMs).toBeGreaterThan(0);
  });
});
