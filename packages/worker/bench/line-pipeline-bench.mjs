#!/usr/bin/env node
// How many request lines per second one worker process turns into OpenAI response
// bodies when the engine costs nothing: parse, chat template, tokenize, sampling
// mapping, InstantEngineDouble (no inference), decode, body. It bounds what one worker
// can feed the control-plane benchmark. Needs `pnpm build`.
//
//   node packages/worker/bench/line-pipeline-bench.mjs [--lines 20000] [--runs 3] [--model-dir DIR]
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { makeModel, Tokenizer } from "@batchgen/engine/tokenizer";
import { InstantEngineDouble, LineRunner } from "@batchgen/worker";

const { values } = parseArgs({ options: { lines: { type: "string", default: "20000" }, runs: { type: "string", default: "3" }, "model-dir": { type: "string" } } });
const lines = Number(values.lines);
const runs = Number(values.runs);
let modelDir = values["model-dir"];
if (!modelDir) {
  modelDir = join(tmpdir(), "batchgen-test-models", "tiny-gemma-seed0");
  if (!existsSync(join(modelDir, "config.json"))) await makeModel({ dir: modelDir, preset: "tiny-gemma", seed: 0 });
}
const tokenizer = await Tokenizer.fromDir(modelDir);
const runner = new LineRunner({ engine: new InstantEngineDouble({ completionTokens: 16 }), tokenizer, modelName: "tiny-gemma" });

const workloads = {
  chat: ["/v1/chat/completions", (i) => ({ model: "tiny-gemma", messages: [{ role: "system", content: "Be brief." }, { role: "user", content: `Write a haiku about the sea, take ${i}.` }], max_tokens: 16 })],
  completion: ["/v1/completions", (i) => ({ model: "tiny-gemma", prompt: `Once upon a time there was a number ${i}`, max_tokens: 16 })],
};

const result = { bench: "worker-line-pipeline", engine: "InstantEngineDouble", lines, runs, node: process.version };
for (const [name, [endpoint, body]] of Object.entries(workloads)) {
  const bodies = Array.from({ length: lines }, (_, i) => JSON.stringify(body(i)));
  const rates = [];
  for (let r = 0; r < runs; r++) {
    const t = performance.now();
    await Promise.all(bodies.map((b, i) => runner.run(`${name}-${r}-${i}`, endpoint, b)));
    rates.push(lines / ((performance.now() - t) / 1000));
  }
  rates.sort((a, b) => a - b);
  result[`${name}_lines_per_s_median`] = Math.round(rates[Math.floor(rates.length / 2)]);
  result[`${name}_lines_per_s_best`] = Math.round(rates.at(-1));
}
console.log(JSON.stringify(result));
