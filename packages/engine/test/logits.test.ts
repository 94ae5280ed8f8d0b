// The CPU engine's logits against Hugging Face transformers (CPU, float32, eager
// attention) on random-weight models of every supported architecture, made by
// tools/reference.py: Gemma 2B-like (MQA, head_dim 256), Gemma 7B-like (MHA), Llama
// with GQA, Llama 3.1 and linear rope scaling, Qwen2 with q/k/v bias, Mistral; Gemma 2
// (soft-caps, local/global layers, pre/post norms), Gemma 3 text and the text model of
// a multimodal Gemma 3 checkpoint (QK-norm, 5 local : 1 global, two rope bases),
// Qwen3 (QK-norm), Qwen2.5, Llama 3.2 (tied, llama3 rope) and Mistral with a sliding
// window; windows are 16 tokens, so the longer prompts reach well past them; and
// loader variants (bf16 and f16 storage, a sharded checkpoint, the multimodal Gemma 3
// with transformers 4.5x's tensor names).
//
// Error measure, for each position (logits row) r of a prompt:
//   relErr(r) = max_i |engine[r,i] - transformers[r,i]| / max_i |transformers[r,i]|
// Acceptance: relErr(r) <= 1e-4 at every position of prompts of 1, 7, 33 and 129 tokens.
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { Engine } from "../ts/index.js";
import { maxRelativeError, referenceCases, type ReferenceCase } from "./reference-models.js";

const MAX_REL_ERR = 1e-4;

let cases: ReferenceCase[] = [];

// Building the reference models (tools/reference.py, once per version of it) takes
// minutes on a loaded 2-core machine.
beforeAll(async () => {
  cases = await referenceCases();
}, 600_000);

describe("prompt logits match transformers", () => {
  const engines: Engine[] = [];
  afterAll(async () => {
    await Promise.all(engines.map((e) => e.close()));
  });

  it("covers every architecture and loader variant", () => {
    expect(cases.map((c) => c.name).sort()).toEqual([
      "gemma-2b-mqa", "gemma-2b-mqa-sharded", "gemma-7b-mha", "gemma2-window", "gemma3-multimodal",
      "gemma3-multimodal-renamed", "gemma3-window", "llama-gqa", "llama-gqa-bf16", "llama-linear-rope", "llama3.2", "llama31-rope",
      "mistral", "mistral-f16", "mistral-window", "qwen2-bias", "qwen2.5", "qwen3",
    ]);
    expect(new Set(cases.map((c) => c.modelType))).toEqual(
      new Set(["gemma", "gemma2", "gemma3_text", "gemma3", "llama", "mistral", "qwen2", "qwen3"]));
    for (const c of cases) expect(c.prompts.map((p) => p.ids.length)).toEqual([1, 7, 33, 129]);
  });

  it("within 1e-4 relative error at every position, for every case", async () => {
    const report: string[] = [];
    for (const c of cases) {
      const engine = await Engine.load({ modelDir: c.modelDir, device: "cpu", threads: 1, kvCacheBlocks: 64 });
      engines.push(engine);
      expect(engine.model.vocabSize).toBe(c.vocabSize);
      expect(engine.model.modelType).toBe(c.modelType);
      for (const p of c.prompts) {
        const got = await engine.promptLogits(p.ids);
        expect(got.length).toBe(p.ids.length * c.vocabSize);
        const { err, row } = maxRelativeError(got, p.logits, c.vocabSize);
        report.push(`${c.name.padEnd(22)} len ${String(p.ids.length).padStart(3)}: max rel err ${err.toExponential(2)} (row ${row})`);
        expect(err, `${c.name}, prompt of ${p.ids.length}, row ${row}`).toBeLessThanOrEqual(MAX_REL_ERR);
      }
      await engine.close();
      engines.pop();
    }
    console.log(report.join("\n"));
  }, 600_000);
});
