// Greedy generation (temperature 0, 64 tokens, EOS ignored) token for token against
// transformers' generate() on the reference models of tools/reference.py, each
// request alone and all of a model's requests in one batch. On the windowed models
// (Gemma 2, Gemma 3, Mistral with a window) the longer prompt is past the window
// before the first generated token.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";

import { Engine } from "../ts/index.js";
import { referenceCases, type ReferenceCase } from "./reference-models.js";

let cases: ReferenceCase[] = [];

// Building the reference models (tools/reference.py, once per version of it) takes
// minutes on a loaded 2-core machine.
beforeAll(async () => {
  cases = await referenceCases();
}, 600_000);

/** The sliding window a reference model applies (0: none), from its config.json. */
async function windowOf(c: ReferenceCase): Promise<number> {
  const top = JSON.parse(await readFile(join(c.modelDir, "config.json"), "utf8")) as Record<string, unknown>;
  const cfg = (top.text_config ?? top) as { sliding_window?: number | null; use_sliding_window?: boolean; model_type?: string };
  if (cfg.model_type === "qwen2" && !cfg.use_sliding_window) return 0;
  return cfg.sliding_window ?? 0;
}

describe("greedy generation matches transformers", () => {
  it("the windowed models' prompts reach past their windows", async () => {
    const windowed: string[] = [];
    for (const c of cases) {
      const window = await windowOf(c);
      // "mistral" and its f16 copy set a 4096-token window that nothing here reaches.
      if (window === 0 || window >= 4096) continue;
      windowed.push(c.name);
      expect(Math.max(...c.greedy.map((g) => g.prompt.length)), c.name).toBeGreaterThan(window);
    }
    expect(windowed.sort()).toEqual(["gemma2-window", "gemma3-multimodal", "gemma3-multimodal-renamed", "gemma3-window", "mistral-window"]);
  });

  it("64 tokens identical for every case, alone and batched", async () => {
    expect(cases.length).toBeGreaterThanOrEqual(10);
    for (const c of cases) {
      // maxSeqs: the 64-block cache holds one 1,024-token sequence; these are short and run batched.
      const engine = await Engine.load({ modelDir: c.modelDir, device: "cpu", threads: 1, kvCacheBlocks: 64, maxSeqs: 8 });
      try {
        expect(c.greedy.length).toBe(2);
        for (const g of c.greedy) {
          const r = await engine.generate({ prompt: g.prompt, maxTokens: 64, temperature: 0, ignoreEos: true });
          expect(r.finishReason).toBe("length");
          expect(r.completionTokens).toBe(64);
          expect(r.promptTokens).toBe(g.prompt.length);
          expect(r.tokens, `${c.name}, prompt of ${g.prompt.length}`).toEqual(g.tokens);
        }
        const batched = await Promise.all(c.greedy.map((g) =>
          engine.generate({ prompt: g.prompt, maxTokens: 64, temperature: 0, ignoreEos: true })));
        batched.forEach((r, i) => expect(r.tokens, `${c.name}, batched ${i}`).toEqual(c.greedy[i]!.tokens));
      } finally {
        await engine.close();
      }
    }
  }, 600_000);
});
