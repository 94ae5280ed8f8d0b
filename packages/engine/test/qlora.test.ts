// QLoRA on the CPU engine: peft adapters on a bitsandbytes NF4 base, against
// PyTorch on the dequantized base plus the adapter (tools/qlora_reference.py).
// The base is a random-weight Gemma 7B-like model (MHA, head_dim 256, tied head)
// whose decoder linears are NF4 with double quantization, as QLoRA stores them;
// the adapters are written by peft: "qlora-r16" as the QLoRA recipe makes them
// (r 16, alpha 16, q/k/v/o/gate/up/down) and "qv-r8" (q and v only), A and B random.
//
// Tolerance: relErr(r) = max|engine - ref| / max|ref| <= 1e-4 at every position,
// the logits test's bound. It holds because nothing is approximated on either side:
// the engine's NF4 dequantization equals the reference quantizer's bit for bit
// (quantized.test.ts, quant_check) and both run the base and the low-rank update in
// f32, so what differs is the order of f32 sums. Greedy tokens are compared where
// the reference's top-2 margin is at least 1e-3 at every step.
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { beforeAll, describe, expect, it } from "vitest";

import { Engine } from "../ts/index.js";
import { maxRelativeError, readF32, referenceDir } from "./reference-models.js";

const TOOLS = join(dirname(fileURLToPath(import.meta.url)), "../tools");
const MAX_REL_ERR = 1e-4;

interface Manifest {
  base_dir: string;
  model_type: string;
  vocab_size: number;
  adapters: { name: string; dir: string; r: number; targets: string[] }[];
  logits: { adapter: string; ids: number[]; logits: string }[];
  greedy: { adapter: string; prompt: number[]; tokens: number[] }[];
}

let dir = "";
let m: Manifest;

beforeAll(async () => {
  dir = await referenceDir(join(TOOLS, "qlora_reference.py"),
    [join(TOOLS, "lora_reference.py"), join(TOOLS, "quant_reference.py")]);
  m = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as Manifest;
}, 600_000);

function load(extra: Partial<Parameters<typeof Engine.load>[0]> = {}): Promise<Engine> {
  return Engine.load({
    modelDir: join(dir, m.base_dir), device: "cpu", threads: 2, kvCacheBlocks: 64,
    loras: m.adapters.map((a) => ({ name: a.name, path: join(dir, a.dir) })), ...extra,
  });
}

describe("QLoRA: peft adapters on an NF4 base match PyTorch on the dequantized base", () => {
  it("the base is NF4 held packed, the adapter QLoRA-shaped, and the adapters change the tokens", async () => {
    expect(m.model_type).toBe("gemma");
    const qlora = m.adapters.find((a) => a.name === "qlora-r16")!;
    expect(qlora.r).toBe(16);
    expect([...qlora.targets].sort()).toEqual(["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]);
    const cfg = JSON.parse(await readFile(join(dir, qlora.dir, "adapter_config.json"), "utf8")) as Record<string, unknown>;
    expect([cfg.peft_type, cfg.r, cfg.lora_alpha, cfg.use_rslora]).toEqual(["LORA", 16, 16, false]);
    for (const g of m.greedy.filter((x) => x.adapter !== "")) {
      const base = m.greedy.find((x) => x.adapter === "" && x.prompt.join() === g.prompt.join())!;
      expect(g.tokens, g.adapter).not.toEqual(base.tokens);
    }
    const engine = await load();
    try {
      expect(engine.model.weightFormat).toContain("nf4 g64 (bitsandbytes NF4)");
      expect(engine.model.weightFormat).toContain("held packed");
      expect(engine.model.loras).toEqual(["qlora-r16", "qv-r8"]);
      expect(engine.model.loraRank).toBe(16);
    } finally {
      await engine.close();
    }
  });

  it("logits within 1e-4 relative error at every position, through each adapter and the base", async () => {
    const engine = await load();
    const report: string[] = [];
    try {
      for (const l of m.logits) {
        const got = await engine.promptLogits(l.ids, l.adapter || undefined);
        const { err, row } = maxRelativeError(got, await readF32(join(dir, l.logits)), m.vocab_size);
        report.push(`nf4 ${(l.adapter || "base").padEnd(10)} max rel err ${err.toExponential(2)} (row ${row})`);
        expect(err, `${l.adapter || "base"}, row ${row}`).toBeLessThanOrEqual(MAX_REL_ERR);
      }
    } finally {
      await engine.close();
    }
    console.log(report.join("\n"));
  }, 60_000);

  it("greedy 32 tokens of each line alone, then all in one batch with one adapter slot", async () => {
    // One slot for two adapters: the batch waits for and reloads slots mid-run.
    const engine = await load({ maxLoras: 1 });
    const run = (g: Manifest["greedy"][number]) =>
      engine.generate({ prompt: g.prompt, maxTokens: 32, temperature: 0, ignoreEos: true, lora: g.adapter || undefined });
    try {
      for (const g of m.greedy) expect((await run(g)).tokens, `${g.adapter || "base"} alone`).toEqual(g.tokens);
      const mixed = await Promise.all(m.greedy.map(run));
      mixed.forEach((r, i) => expect(r.tokens, `${m.greedy[i]!.adapter || "base"} in the batch`).toEqual(m.greedy[i]!.tokens));
      expect(engine.stats().loraEvictions).toBeGreaterThan(0);
    } finally {
      await engine.close();
    }
  }, 60_000);

  it("the prefix cache on the NF4 base is shared within an adapter, never across adapters", async () => {
    const engine = await load({ blockSize: 4 });
    try {
      const prompt = Array.from({ length: 24 }, (_, i) => 3 + ((i * 41) % 990));
      const run = (lora?: string) => engine.generate({ prompt, maxTokens: 1, temperature: 0, lora });
      expect((await run("qlora-r16")).cachedTokens).toBe(0);
      expect((await run("qv-r8")).cachedTokens).toBe(0);       // another adapter: no block shared
      expect((await run()).cachedTokens).toBe(0);              // nor with the base
      expect((await run("qv-r8")).cachedTokens).toBe(20);      // the same adapter: every full block but the last token's
      expect((await run("qlora-r16")).cachedTokens).toBe(20);
    } finally {
      await engine.close();
    }
  }, 60_000);
});
