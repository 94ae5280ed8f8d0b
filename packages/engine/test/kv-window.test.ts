// KV blocks behind a sliding window are given back: a Mistral-style model whose
// every layer attends over the last 32 tokens, generating far past its window,
// holds a bounded number of KV blocks (engine stats), and its tokens are those the
// whole sequence's logits give when nothing is released (promptLogits). A model that
// mixes local and global layers (Gemma 2 here; Gemma 3 likewise) frees nothing: its
// global layers read every block.
// Needs the native addon (pnpm --filter @batchgen/engine build).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { Engine } from "../ts/index.js";
import { makeModel } from "../ts/make-model.js";

let root: string;
let modelDir: string;
let mixedDir: string;
const engines: Engine[] = [];
const WINDOW = 32;
const BLOCK = 16;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "bg-window-"));
  modelDir = join(root, "tiny-mistral-window");
  await makeModel({ dir: modelDir, preset: "tiny-mistral", seed: 3, overrides: { sliding_window: WINDOW } });
  mixedDir = join(root, "tiny-gemma2-window");
  await makeModel({ dir: mixedDir, preset: "tiny-gemma2", seed: 3, overrides: { sliding_window: WINDOW } });
});

/**
 * Generates greedily on a fresh engine and returns the result with the most KV blocks
 * it held at once: the engine's own high-water mark, taken after each step's
 * allocations (polling kvBlocksUsed from here could miss the last step's block).
 */
async function generateWithPeak(engine: Engine, prompt: number[], maxTokens: number) {
  const r = await engine.generate({ prompt, maxTokens, temperature: 0, ignoreEos: true });
  return { r, maxUsed: engine.stats().kvBlocksPeak };
}

const PROMPT = Array.from({ length: 50 }, (_, i) => 3 + ((i * 37) % 900));

afterAll(async () => {
  await Promise.all(engines.map((e) => e.close()));
  await rm(root, { recursive: true, force: true });
});

describe("sliding-window KV release", () => {
  it("a long generation on an all-local model holds window / block + 2 blocks at most", async () => {
    const engine = await Engine.load({ modelDir, threads: 2, blockSize: BLOCK, kvCacheBlocks: 256, maxModelLen: 1024, maxBatchTokens: 64 });
    engines.push(engine);
    const prompt = PROMPT;
    const { r, maxUsed } = await generateWithPeak(engine, prompt, 600);
    expect(r.tokens).toHaveLength(600);
    // 650 positions would be 41 blocks; the window needs 2, plus the block being
    // written and one straddling the window's start, plus a 64-token prefill chunk.
    expect(maxUsed).toBeGreaterThan(0);
    expect(maxUsed).toBeLessThanOrEqual(WINDOW / BLOCK + 2 + 64 / BLOCK);
    expect(engine.stats().kvBlocksUsed).toBe(0);

    // promptLogits runs the whole sequence without the scheduler (no block is released):
    // its argmax at every position is the token generation picked there.
    const seq = [...prompt, ...r.tokens];
    const logits = await engine.promptLogits(seq.slice(0, -1));
    const vocab = engine.model.vocabSize;
    for (let i = 0; i < r.tokens.length; i++) {
      const row = logits.subarray((prompt.length - 1 + i) * vocab, (prompt.length + i) * vocab);
      let best = 0;
      for (let v = 1; v < vocab; v++) if (row[v]! > row[best]!) best = v;
      expect(best, `position ${prompt.length + i}`).toBe(r.tokens[i]);
    }
  });

  it("a model with global layers (Gemma 2: local and global alternate) keeps every block", async () => {
    const engine = await Engine.load({ modelDir: mixedDir, threads: 2, blockSize: BLOCK, kvCacheBlocks: 256, maxModelLen: 1024, maxBatchTokens: 64 });
    engines.push(engine);
    const { r, maxUsed } = await generateWithPeak(engine, PROMPT, 150);
    expect(r.tokens).toHaveLength(150);
    // The KV of all 199 positions that were run (the last token is sampled, never fed back), in 13 blocks.
    expect(maxUsed).toBe(Math.ceil((PROMPT.length + 150 - 1) / BLOCK));
    expect(engine.stats().kvBlocksUsed).toBe(0);
  });
});
