#!/usr/bin/env node
// On a GPU machine, after `pnpm build` (with nvcc and cuBLAS): every quantized
// checkpoint of tools/quant_reference.py (FP8 per tensor / block / channel, AWQ,
// GPTQ, GPTQ act-order, GPTQ v2, NF4, NF4 double-quantized, and a bf16 one with
// quantize "fp8") on the CUDA engine, against transformers' float32 logits on the
// dequantized weights. Until the CUDA backend has quantized products it dequantizes
// these weights to bf16 at load; the check says so (the engine's weightFormat) and
// holds the logits to the bound scripts/gpu-check.sh holds every bf16 model to:
// rel_l2(r) = ||engine[r] - ref[r]||_2 / ||ref[r]||_2 <= 2e-2 at every position.
//   node scripts/gpu-quant-check.mjs [REFERENCE_DIR] [--device cuda:0]
// REFERENCE_DIR holds manifest.json (made here when absent, with $BATCHGEN_PYTHON:
// torch and transformers). Exit code 1 when a case fails or is not finite.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { Engine } = await import(join(root, "packages/engine/dist/index.js"));
const args = process.argv.slice(2);
const device = args.includes("--device") ? args[args.indexOf("--device") + 1] : "cuda:0";
const dir = args.find((a) => !a.startsWith("--") && a !== device) ?? join(root, "build/quant-reference");
if (!existsSync(join(dir, "manifest.json"))) {
  const python = process.env.BATCHGEN_PYTHON ?? join(root, ".venv/bin/python");
  execFileSync(python, [join(root, "packages/engine/tools/quant_reference.py"), "--out", dir], { stdio: "inherit" });
}
const BOUND = 2e-2;
const { cases } = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
let failed = 0;
for (const [name, c] of Object.entries(cases)) {
  const engine = await Engine.load({ modelDir: join(dir, c.model_dir), device, kvCacheBlocks: 16, ...(c.quantize ? { quantize: c.quantize } : {}) });
  let worst = 0;
  for (const p of c.prompts) {
    const buf = readFileSync(join(dir, p.logits));
    const want = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    const got = await engine.promptLogits(p.ids);
    for (let r = 0; r < p.ids.length; r++) {
      let diff = 0;
      let norm = 0;
      for (let i = r * c.vocab_size; i < (r + 1) * c.vocab_size; i++) {
        diff += (got[i] - want[i]) ** 2;
        norm += want[i] ** 2;
      }
      const e = Math.sqrt(diff / norm);
      worst = Number.isFinite(e) ? Math.max(worst, e) : Infinity;
    }
  }
  const ok = worst <= BOUND;
  if (!ok) failed++;
  console.log(`${ok ? "ok  " : "FAIL"} ${name.padEnd(15)} rel_l2 ${worst.toExponential(2)} (bound ${BOUND})  ${engine.model.weightFormat}`);
  await engine.close();
}
console.log(`${Object.keys(cases).length - failed}/${Object.keys(cases).length} quantized checkpoints within the bound on ${device}`);
process.exit(failed ? 1 : 0);
