// A batch input file of completion lines whose prompts are random token ids (greedy,
// ignore_eos, so every line produces exactly its max_tokens):
//  - workload A: exactly promptLen ids each, maxTokens output tokens each;
//  - a-sampled: workload A where every `sampled.every`-th line (lines 0, every, 2 *
//    every, ...) samples at `sampled.temperature` and `sampled.topP` with seed
//    seed + i, as bench_engine's --sampled-every (issue 11's half-sampled batch);
//  - shared-prefix (bench_engine's --workload shared-prefix): each line one of
//    `prefixes` random prefixes of [prefixMin, prefixMax] ids, then [suffixMin,
//    suffixMax] ids of its own, and [outMin, outMax] output tokens.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** xorshift32: a small seeded stream, so the same seed gives the same prompts. */
function randomIds(seed) {
  let s = seed >>> 0 || 1;
  return (lo, hi) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return lo + (s % (hi - lo));
  };
}

/**
 * Writes `lines` request lines to `out`; ids are drawn from [1000, 200000) (as the
 * engine benchmark's, bench/bench_engine.cpp), clipped to the vocabulary, so they
 * avoid the special tokens at its start. Returns what was written.
 */
export function makeBatch({ modelDir, model, lines, promptLen, maxTokens, seed, out, shared, sampled }) {
  const config = JSON.parse(readFileSync(join(modelDir, "config.json"), "utf8"));
  const vocab = Math.min(config.vocab_size, 200_000);
  if (!(vocab > 1000)) throw new Error(`${modelDir}/config.json: vocab_size ${config.vocab_size} is too small`);
  const next = randomIds(seed);
  const ids = (n) => Array.from({ length: n }, () => next(1000, vocab));
  const between = (lo, hi) => next(lo, hi + 1);
  const heads = shared ? Array.from({ length: shared.prefixes }, () => ids(between(shared.prefixMin, shared.prefixMax))) : [];
  const rows = [];
  let promptTokens = 0;
  let outTokens = 0;
  for (let i = 0; i < lines; i++) {
    const prompt = shared ? [...heads[next(0, shared.prefixes)], ...ids(between(shared.suffixMin, shared.suffixMax))] : ids(promptLen);
    const max = shared ? between(shared.outMin, shared.outMax) : maxTokens;
    promptTokens += prompt.length;
    outTokens += max;
    const body = { model, prompt, max_tokens: max, temperature: 0, ignore_eos: true };
    if (sampled && i % sampled.every === 0) Object.assign(body, { temperature: sampled.temperature, top_p: sampled.topP, seed: seed + i });
    rows.push(JSON.stringify({ custom_id: `line-${i}`, method: "POST", url: "/v1/completions", body }));
  }
  writeFileSync(out, rows.join("\n") + "\n");
  return { lines, promptTokens, outTokens, bytes: Buffer.byteLength(rows.join("\n")) + 1 };
}

/** The lines of a batch file as { customId, prompt, maxTokens, temperature, topP, seed } (what the engine-alone run replays). */
export function readBatch(file) {
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => {
      const line = JSON.parse(l);
      const { prompt, max_tokens: maxTokens, temperature = 0, top_p: topP = 1, seed } = line.body;
      return { customId: line.custom_id, prompt, maxTokens, temperature, topP, seed };
    });
}
