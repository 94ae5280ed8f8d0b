// Quantized checkpoints on the CPU engine against PyTorch on the dequantized
// weights. tools/quant_reference.py writes one small random-weight Llama (2 layers,
// hidden 128, GQA) per format, in the layout each format documents (no AWQ, GPTQ or
// bitsandbytes library runs here): transformers FP8 per tensor and per 32x64 block,
// fbgemm FP8 per channel, AWQ (gemm, g64), GPTQ (g32; act-order; gptq_v2 with one
// group a row), bitsandbytes NF4 with and without double quantization, and a bf16
// checkpoint the engine quantizes itself (quantize: "fp8"). Its reference is
// transformers' LlamaForCausalLM in float32 holding the weights dequantized by each
// format's own formula.
//
// Tolerances:
//  - each linear of layer 0 (tests/cpp/quant_check.cpp): our dequantized weight
//    equals the reference's bit for bit, the CPU product with the packed weight
//    equals the dense product bit for bit, and both are within 1e-5 * sum|x w| of
//    the float64 matmul (f32 accumulation over at most 256 terms);
//  - whole-model logits: the engine computes with exactly the reference's weights,
//    so the logits test's bound holds: relErr(r) = max|engine - ref| / max|ref| <=
//    1e-4 at every position of prompts of 1, 7 and 33 tokens (f32 sums in another order).
import { spawnSync } from "node:child_process";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { Engine, UnsupportedError } from "../ts/index.js";
import { maxRelativeError, readF32, referenceDir } from "./reference-models.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const SCRIPT = join(HERE, "../tools/quant_reference.py");
const CHECK = join(HERE, "../build/quant_check");
const MAX_REL_ERR = 1e-4;

interface QuantCase {
  model_dir: string;
  check: string;
  quantize: string;
  vocab_size: number;
  prompts: { ids: number[]; logits: string }[];
  linears: string[];
}

// What each case's weights are reported as (ModelInfo.weightFormat): our storage
// ("per-channel": a scale per output row), then the checkpoint's own form.
const FORMATS: Record<string, string> = {
  "fp8-tensor": "fp8_e4m3 per-channel (FP8 e4m3 (fp8, per tensor))",
  "fp8-block": "fp8_e4m3 g64 (FP8 e4m3 (fp8, block 32x64))",
  "fp8-channel": "fp8_e4m3 per-channel (FP8 e4m3 (fbgemm_fp8, per channel))",
  awq: "int4 g64 (AWQ int4 g64)",
  gptq: "int4 g32 (GPTQ int4 g32)",
  "gptq-act-order": "int4 g32 (GPTQ int4 g32 act-order)",
  "gptq-v2": "int4 per-channel (GPTQ int4 per channel)",
  nf4: "nf4 g64 (bitsandbytes NF4)",
  "nf4-double": "nf4 g64 (bitsandbytes NF4)",
  "quantize-fp8": "fp8_e4m3 per-channel (--quantize fp8 (per-channel))",
};

let dir = "";
let cases: Record<string, QuantCase> = {};
const scratch: string[] = [];

beforeAll(async () => {
  dir = await referenceDir(SCRIPT);
  cases = (JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as { cases: Record<string, QuantCase> }).cases;
}, 600_000);

afterAll(async () => {
  await Promise.all(scratch.map((d) => rm(d, { recursive: true, force: true })));
});

describe("quantized checkpoints against PyTorch on the dequantized weights", () => {
  it("covers every format", () => {
    expect(Object.keys(cases).sort()).toEqual(Object.keys(FORMATS).sort());
  });

  it("each quantized linear: our dequantized weight and CPU product match the reference", () => {
    for (const [name, c] of Object.entries(cases)) {
      const args = [join(dir, name), ...(c.quantize === "fp8" ? ["--quantize-fp8"] : [])];
      const r = spawnSync(CHECK, args, { encoding: "utf8" });
      expect(r.stderr, name).toBe("");
      const lines = r.stdout.trim().split("\n");
      expect(lines.filter((l) => l.startsWith("FAIL")), name).toEqual([]);
      expect(lines.at(-1), name).toBe(`${c.linears.length} linears checked`);
      for (const linear of c.linears) expect(r.stdout, name).toContain(`ok ${linear} `);
      expect(r.status, name).toBe(0);
    }
  });

  it("whole-model logits within 1e-4 relative error, and the engine reports the format", async () => {
    const report: string[] = [];
    for (const [name, c] of Object.entries(cases)) {
      const engine = await Engine.load({
        modelDir: join(dir, c.model_dir),
        threads: 1,
        kvCacheBlocks: 16,
        ...(c.quantize === "fp8" ? { quantize: "fp8" as const } : {}),
      });
      try {
        const info = engine.model;
        // 7 linears x 2 layers are quantized; the embedding, norms and head are f32.
        expect(info.weightFormat, name).toContain(`${FORMATS[name]} `);
        expect(info.weightFormat, name).toContain("held packed");
        expect(info.weightParams, name).toBe(2 * 256 * 128 + 5 * 128 + 2 * (128 * 128 * 2 + 64 * 128 * 2 + 3 * 256 * 128));
        // Packed weights: fewer bytes than f32 would take.
        expect(info.weightBytes, name).toBeLessThan(4 * info.weightParams);
        expect(info.kvBytesPerToken, name).toBe(2 * 2 * 64 * 4);
        for (const p of c.prompts) {
          const want = await readF32(join(dir, p.logits));
          const got = await engine.promptLogits(p.ids);
          const { err, row } = maxRelativeError(got, want, c.vocab_size);
          report.push(`${name.padEnd(15)} len ${String(p.ids.length).padStart(2)}: max rel err ${err.toExponential(2)}`);
          expect(err, `${name}, prompt of ${p.ids.length}, row ${row}`).toBeLessThanOrEqual(MAX_REL_ERR);
        }
      } finally {
        await engine.close();
      }
    }
    console.log(report.join("\n"));
  }, 300_000);

  it("refuses a variant it does not run, naming it", async () => {
    const copy = await mkdtemp(join(tmpdir(), "bg-quant-"));
    scratch.push(copy);
    await cp(join(dir, cases.awq!.model_dir), copy, { recursive: true });
    const configPath = join(copy, "config.json");
    const config = JSON.parse(await readFile(configPath, "utf8")) as Record<string, Record<string, unknown>>;
    config.quantization_config!.version = "gemv";
    await writeFile(configPath, JSON.stringify(config));
    const err = await Engine.load({ modelDir: copy, threads: 1, kvCacheBlocks: 16 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsupportedError);
    expect((err as Error).message).toContain('AWQ version "gemv" is not supported (the "gemm" packing is)');
    await expect(Engine.load({ modelDir: copy, quantize: "int8" as "fp8" })).rejects.toThrow(
      'quantize: must be "fp8" when set, got int8');
  });
});
