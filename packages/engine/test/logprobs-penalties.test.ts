// Logprobs and penalties against transformers + torch (CPU, float32) on the
// random-weight reference models: every generated token's logprob and top
// alternatives equal log_softmax of transformers' logits for the same sequence
// within 1e-4; greedy decoding under presence/frequency/repetition penalties and
// logit bias gives the tokens a torch implementation of vLLM's definitions gives.
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { Engine } from "../ts/index.js";
import { referenceCases, type ReferenceCase } from "./reference-models.js";
import { runPython } from "./run-python.js";

const SCRIPT = String.raw`
import json, sys, torch
from transformers import AutoModelForCausalLM
torch.manual_seed(0)
job = json.load(sys.stdin)
model = AutoModelForCausalLM.from_pretrained(job["model_dir"], dtype=torch.float32, attn_implementation="eager").eval()
out = []
with torch.no_grad():
    for case in job["cases"]:
        prompt = case["prompt"]
        if case["mode"] == "logprobs":
            ids = torch.tensor([prompt + case["tokens"]])
            logp = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
            rows = []
            for j, t in enumerate(case["tokens"]):
                row = logp[len(prompt) - 1 + j]
                top = torch.topk(row, case["k"]) if case["k"] > 0 else None
                rows.append({"logprob": row[t].item(),
                             "top_ids": top.indices.tolist() if top is not None else [],
                             "top": top.values.tolist() if top is not None else []})
            out.append(rows)
        else:
            p = case["params"]
            seq, gen = list(prompt), []
            for _ in range(case["n"]):
                logits = model(torch.tensor([seq])).logits[0, -1].clone()
                for tok, b in p["bias"]:
                    logits[tok] += b
                seen = torch.tensor(sorted(set(seq)))
                rep = p["repetition"]
                if rep != 1.0:
                    v = logits[seen]
                    logits[seen] = torch.where(v > 0, v / rep, v * rep)
                if gen:
                    counts = torch.bincount(torch.tensor(gen), minlength=logits.numel()).float()
                    logits -= p["frequency"] * counts + p["presence"] * (counts > 0).float()
                t = int(torch.argmax(logits))
                seq.append(t); gen.append(t)
            out.append(gen)
json.dump(out, sys.stdout)
`;

let cases: ReferenceCase[] = [];
const engines: Engine[] = [];

beforeAll(async () => {
  cases = await referenceCases();
});
afterAll(async () => {
  await Promise.all(engines.map((e) => e.close()));
});

async function open(c: ReferenceCase): Promise<Engine> {
  const e = await Engine.load({ modelDir: c.modelDir, threads: 2, kvCacheBlocks: 128, maxSeqs: 16 });  // short requests, batched
  engines.push(e);
  return e;
}

describe("logprobs", () => {
  it("equal log_softmax of transformers' logits for every generated token, within 1e-4", async () => {
    for (const name of ["llama-gqa", "gemma-2b-mqa", "qwen2-bias"]) {
      const c = cases.find((x) => x.name === name)!;
      const engine = await open(c);
      const runs = await Promise.all(
        [
          { prompt: c.prompts[1]!.ids, temperature: 0, k: 5 },
          { prompt: c.prompts[2]!.ids, temperature: 0.9, k: 20 },
          { prompt: c.prompts[0]!.ids, temperature: 1.2, k: 0 },
        ].map(async (r, i) => {
          const g = await engine.generate({ prompt: r.prompt, temperature: r.temperature, seed: 7 + i, maxTokens: 12, ignoreEos: true, logprobs: r.k });
          return { ...r, result: g };
        }),
      );
      const want = runPython(SCRIPT, {
        model_dir: c.modelDir,
        cases: runs.map((r) => ({ mode: "logprobs", prompt: r.prompt, tokens: r.result.tokens, k: r.k })),
      }) as Array<Array<{ logprob: number; top_ids: number[]; top: number[] }>>;
      let worst = 0;
      runs.forEach((r, i) => {
        const got = r.result.logprobs!;
        expect(got).toHaveLength(r.result.tokens.length);
        got.forEach((g, j) => {
          const w = want[i]![j]!;
          worst = Math.max(worst, Math.abs(g.logprob - w.logprob));
          expect(g.top.map((t) => t.id)).toEqual(w.top_ids);
          g.top.forEach((t, q) => (worst = Math.max(worst, Math.abs(t.logprob - w.top[q]!))));
        });
      });
      expect(worst, name).toBeLessThan(1e-4);
    }
  });
});

describe("penalties and logit bias", () => {
  it("greedy tokens match a torch implementation of vLLM's definitions", async () => {
    const c = cases.find((x) => x.name === "llama-gqa")!;
    const engine = await open(c);
    // The random model's greedy output never repeats a token; a bias that makes token
    // 5 win the first step by 0.5 (from transformers' logits of that step) gives the
    // positive penalties a repeat to push against.
    const ref = c.prompts[1]!;
    const last = ref.logits.subarray((ref.ids.length - 1) * c.vocabSize, ref.ids.length * c.vocabSize);
    const edge = Math.max(...last) - last[5]! + 0.5;
    const b = (...pairs: Array<[number, number]>) => pairs;
    const settings = [
      { presence: 2, frequency: 0, repetition: 1, bias: b([5, edge]) },
      { presence: 0, frequency: 2, repetition: 1, bias: b([5, edge]) },
      { presence: 0, frequency: 0, repetition: 3, bias: b([5, edge]) },
      { presence: 0.4, frequency: 0.6, repetition: 1.3, bias: b([5, 30], [9, -100]) },
      { presence: -2, frequency: 1.5, repetition: 0.5, bias: b() },
      { presence: 0, frequency: 0, repetition: 1, bias: b([5, edge]) },
    ];
    const prompt = c.prompts[1]!.ids;
    const plain = await engine.generate({ prompt, temperature: 0, maxTokens: 24, ignoreEos: true });
    const got = await Promise.all(
      settings.map((s) =>
        engine.generate({
          prompt,
          temperature: 0,
          maxTokens: 24,
          ignoreEos: true,
          presencePenalty: s.presence,
          frequencyPenalty: s.frequency,
          repetitionPenalty: s.repetition,
          logitBias: new Map(s.bias),
        }),
      ),
    );
    const want = runPython(SCRIPT, {
      model_dir: c.modelDir,
      cases: settings.map((s) => ({ mode: "penalized", prompt, n: 24, params: s })),
    }) as number[][];
    got.forEach((g, i) => expect(g.tokens, JSON.stringify(settings[i])).toEqual(want[i]));
    // Each penalty changes what greedy decoding gives under the same bias.
    const control = got[5]!.tokens.join();
    for (const i of [0, 1, 2]) expect(got[i]!.tokens.join(), JSON.stringify(settings[i])).not.toBe(control);
    expect(got[4]!.tokens.join()).not.toBe(plain.tokens.join());
    // Bias +30 on token 5 makes it the first token.
    expect(got[3]!.tokens[0]).toBe(5);
  });
});
