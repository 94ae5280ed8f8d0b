// LoRA adapters on the CPU engine against peft (tools/lora_reference.py): for a
// Gemma 3 base and a Llama base (random weights), four adapters written by peft with
// random, non-zero A and B (ranks 2-16, rsLoRA, "all-linear", adapters of only some
// projections). The reference for an adapter is peft's merge_and_unload() of it into
// the base, run by transformers in f32.
//
//  - logits of a 33-token prompt through each adapter (and the base) within 1e-4
//    relative error of the merged model at every position (logits.test.ts's measure);
//  - greedy 32 tokens of each adapter alone equal the merged model's;
//  - one batch mixing the four adapters and the base (ten lines, all submitted at
//    once, so every step holds several adapters) gives each line the merged model's
//    tokens, with two adapter slots (so adapters are evicted and reloaded mid-batch);
//  - prefix caching never crosses adapters: the same prompt through another adapter
//    reuses no block, through the same one it does;
//  - adapters the engine cannot serve are refused at load, naming what is wrong.
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { Engine, ModelLoadError, UnsupportedError, InvalidArgumentError } from "../ts/index.js";
import { maxRelativeError, readF32, referenceDir } from "./reference-models.js";

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), "../tools/lora_reference.py");
const MAX_REL_ERR = 1e-4;

interface LoraCase {
  name: string;
  baseDir: string;
  modelType: string;
  vocabSize: number;
  adapters: { name: string; dir: string; r: number }[];
  logits: { adapter: string; ids: number[]; logits: Float32Array }[];
  greedy: { adapter: string; prompt: number[]; tokens: number[] }[];
}

interface Manifest {
  cases: Record<string, {
    base_dir: string; model_type: string; vocab_size: number;
    adapters: { name: string; dir: string; r: number }[];
    logits: { adapter: string; ids: number[]; logits: string }[];
    greedy: { adapter: string; prompt: number[]; tokens: number[] }[];
  }>;
}

const cases: LoraCase[] = [];
let scratch = "";

beforeAll(async () => {
  const dir = await referenceDir(SCRIPT);
  const manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as Manifest;
  for (const [name, c] of Object.entries(manifest.cases)) {
    cases.push({
      name,
      baseDir: join(dir, c.base_dir),
      modelType: c.model_type,
      vocabSize: c.vocab_size,
      adapters: c.adapters.map((a) => ({ ...a, dir: join(dir, a.dir) })),
      logits: await Promise.all(c.logits.map(async (l) => ({ ...l, logits: await readF32(join(dir, l.logits)) }))),
      greedy: c.greedy,
    });
  }
  scratch = await mkdtemp(join(tmpdir(), "batchgen-lora-"));
}, 600_000);

afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

function load(c: LoraCase, extra: Partial<Parameters<typeof Engine.load>[0]> = {}): Promise<Engine> {
  return Engine.load({
    modelDir: c.baseDir, device: "cpu", threads: 2, kvCacheBlocks: 128, maxSeqs: 16,  // short requests, batched
    loras: c.adapters.map((a) => ({ name: a.name, path: a.dir })), ...extra,
  });
}

describe("LoRA adapters match peft's merged models", () => {
  it("has a Gemma-family and a Llama-family base, four adapters each", () => {
    expect(cases.map((c) => c.modelType).sort()).toEqual(["gemma3_text", "llama"]);
    for (const c of cases) {
      expect(c.adapters.map((a) => a.r)).toEqual([8, 4, 16, 2]);
      // The adapters change the model: no adapter's greedy tokens equal the base's.
      for (const g of c.greedy.filter((x) => x.adapter !== "")) {
        const base = c.greedy.find((x) => x.adapter === "" && x.prompt.join() === g.prompt.join())!;
        expect(g.tokens, `${c.name} ${g.adapter}`).not.toEqual(base.tokens);
      }
    }
  });

  it("logits within 1e-4 relative error at every position, through each adapter and the base", async () => {
    const report: string[] = [];
    for (const c of cases) {
      const engine = await load(c);
      try {
        expect(engine.model.loras).toEqual(c.adapters.map((a) => a.name));
        expect(engine.model.loraRank).toBe(16);
        for (const l of c.logits) {
          const got = await engine.promptLogits(l.ids, l.adapter === "" ? undefined : l.adapter);
          const { err, row } = maxRelativeError(got, l.logits, c.vocabSize);
          report.push(`${c.name} ${(l.adapter || "base").padEnd(15)} max rel err ${err.toExponential(2)} (row ${row})`);
          expect(err, `${c.name} ${l.adapter || "base"}, row ${row}`).toBeLessThanOrEqual(MAX_REL_ERR);
        }
      } finally {
        await engine.close();
      }
    }
    console.log(report.join("\n"));
  }, 120_000);

  it("greedy tokens of each adapter alone, then of all adapters and the base in one batch", async () => {
    for (const c of cases) {
      // Two slots for four adapters: the mixed batch evicts and reloads adapters.
      const engine = await load(c, { maxLoras: 2 });
      try {
        for (const g of c.greedy) {
          const r = await engine.generate({ prompt: g.prompt, maxTokens: 32, temperature: 0, ignoreEos: true, lora: g.adapter || undefined });
          expect(r.tokens, `${c.name} ${g.adapter || "base"} alone`).toEqual(g.tokens);
        }
        const mixed = await Promise.all(c.greedy.map((g) =>
          engine.generate({ prompt: g.prompt, maxTokens: 32, temperature: 0, ignoreEos: true, lora: g.adapter || undefined })));
        mixed.forEach((r, i) => expect(r.tokens, `${c.name} ${c.greedy[i]!.adapter || "base"} in the batch`).toEqual(c.greedy[i]!.tokens));
        const s = engine.stats();
        expect(s.lorasResident.length).toBe(2);
        expect(s.loraEvictions).toBeGreaterThan(0);
      } finally {
        await engine.close();
      }
    }
  }, 120_000);
});

describe("prefix cache and adapters", () => {
  it("a cached prefix is reused by the same adapter only", async () => {
    const c = cases[1]!;
    const engine = await load(c, { blockSize: 4 });
    try {
      const prompt = Array.from({ length: 24 }, (_, i) => 3 + ((i * 37) % 900));
      const run = (lora?: string) => engine.generate({ prompt, maxTokens: 1, temperature: 0, lora });
      expect((await run("all-r8")).cachedTokens).toBe(0);
      expect((await run("qv-rslora")).cachedTokens).toBe(0);   // another adapter: nothing shared
      expect((await run()).cachedTokens).toBe(0);              // nor with the base
      expect((await run("all-r8")).cachedTokens).toBe(20);     // the same adapter: all full blocks but the last token's
      expect((await run()).cachedTokens).toBe(20);
    } finally {
      await engine.close();
    }
  }, 60_000);
});

describe("adapters the engine cannot serve", () => {
  // A copy of a peft adapter with its config edited.
  async function edited(c: LoraCase, name: string, edit: (cfg: Record<string, unknown>) => void): Promise<string> {
    const dir = join(scratch, `${c.name}-${name}`);
    await cp(c.adapters[0]!.dir, dir, { recursive: true });
    const path = join(dir, "adapter_config.json");
    const cfg = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
    edit(cfg);
    await writeFile(path, JSON.stringify(cfg));
    return dir;
  }

  it("refuses modules_to_save, DoRA and unsupported target modules, naming them", async () => {
    const c = cases[0]!;
    const refused = async (dir: string) =>
      Engine.load({ modelDir: c.baseDir, device: "cpu", threads: 1, kvCacheBlocks: 16, loras: [{ name: "x", path: dir }] })
        .then(() => "loaded", (e: unknown) => e);
    const save = await refused(await edited(c, "save", (x) => { x.modules_to_save = ["lm_head", "embed_tokens"]; }));
    expect(save).toBeInstanceOf(UnsupportedError);
    expect(String((save as Error).message)).toMatch(/modules_to_save \(lm_head, embed_tokens\)/);
    const dora = await refused(await edited(c, "dora", (x) => { x.use_dora = true; }));
    expect(dora).toBeInstanceOf(UnsupportedError);
    expect(String((dora as Error).message)).toMatch(/use_dora/);
    const targets = await refused(await edited(c, "targets", (x) => { x.target_modules = ["q_proj", "embed_tokens", "lm_head"]; }));
    expect(targets).toBeInstanceOf(UnsupportedError);
    expect(String((targets as Error).message)).toMatch(/target_modules embed_tokens, lm_head not supported/);
    const missing = await refused(join(scratch, "no-such-adapter"));
    expect(missing).toBeInstanceOf(ModelLoadError);
    expect(String((missing as Error).message)).toMatch(/no adapter_config\.json/);
  });

  it("an adapter whose weights turn out unreadable fails its requests, not the engine", async () => {
    const c = cases[0]!;
    const dir = await edited(c, "corrupt", () => {});
    const engine = await Engine.load({ modelDir: c.baseDir, device: "cpu", threads: 1, kvCacheBlocks: 16, loras: [{ name: "bad", path: dir }] });
    try {
      await writeFile(join(dir, "adapter_model.safetensors"), Buffer.from("not a safetensors file"));
      const r = await engine.generate({ prompt: [5, 6, 7], maxTokens: 2, lora: "bad" });
      expect(r.finishReason).toBe("error");
      expect(r.error).toMatch(/LoRA adapter 'bad': .*adapter_model\.safetensors/);
      expect((await engine.generate({ prompt: [5, 6, 7], maxTokens: 2 })).finishReason).toBe("length");
    } finally {
      await engine.close();
    }
  });

  it("a request naming an unknown adapter is refused with the known ones", async () => {
    const c = cases[0]!;
    const engine = await load(c);
    try {
      await expect(engine.generate({ prompt: [5, 6], lora: "nope" })).rejects.toThrow(InvalidArgumentError);
      await expect(engine.generate({ prompt: [5, 6], lora: "nope" })).rejects.toThrow(/unknown LoRA adapter 'nope' \(loaded: all-r8, qv-rslora/);
    } finally {
      await engine.close();
    }
  });
});
