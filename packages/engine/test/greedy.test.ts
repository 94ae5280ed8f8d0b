// Greedy generation (temperature 0, 64 tokens, EOS ignored) token for token against
// transformers' generate() on the reference models of tools/reference.py, each
// request alone and all of a model's requests in one batch.
import { beforeAll, describe, expect, it } from "vitest";

import { Engine } from "../ts/index.js";
import { referenceCases, type ReferenceCase } from "./reference-models.js";

let cases: ReferenceCase[] = [];

// Building the reference models (tools/reference.py, once per version of it) takes
// minutes on a loaded 2-core machine.
beforeAll(async () => {
  cases = await referenceCases();
}, 600_000);

describe("greedy generation matches transformers", () => {
  it("64 tokens identical for every case, alone and batched", async () => {
    expect(cases.length).toBeGreaterThanOrEqual(10);
    for (const c of cases) {
      const engine = await Engine.load({ modelDir: c.modelDir, device: "cpu", threads: 1, kvCacheBlocks: 64 });
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
