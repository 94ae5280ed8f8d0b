// The engine alone on a batch file's prompts: the same addon and engine options the
// worker uses, every line handed to Engine.generate at once, as the worker's requests
// would be (EOS ignored, the line's max_tokens, temperature, top_p and seed). The figure is output tokens
// over the time from the first generate() to the last result, after the lines of a
// warm-up file (model load and warm-up excluded, as in the engine benchmark).
import { performance } from "node:perf_hooks";
import { Engine } from "@batchgen/engine";
import { readBatch } from "./make-batch.mjs";

/** The engine request the worker makes of such a line (worker/src/sampling-params.ts). */
function asWorkerWould(engine, lines, prefix) {
  return Promise.all(
    lines.map((l) =>
      engine.generate({
        id: `${prefix}${l.customId}`,
        prompt: l.prompt,
        maxTokens: l.maxTokens,
        temperature: l.temperature,
        topP: l.topP,
        topK: 0,
        minP: 0,
        priority: 0,
        ignoreEos: true,
        ...(l.seed !== undefined && { seed: l.seed }),
      }),
    ),
  );
}

export async function engineAlone({ input, warmup, engineOptions, log }) {
  const lines = readBatch(input);
  const tLoad = performance.now();
  const engine = await Engine.load(engineOptions);
  const loadSecs = (performance.now() - tLoad) / 1000;
  log(`engine: loaded ${engine.model.architecture} on ${engine.model.deviceName} in ${loadSecs.toFixed(1)} s, ${engine.model.kvBlocks} KV blocks`);
  try {
    if (warmup) await asWorkerWould(engine, readBatch(warmup), "warmup-");
    const before = engine.stats();
    const t0 = performance.now();
    const results = await asWorkerWould(engine, lines, "");
    const secs = (performance.now() - t0) / 1000;
    const problems = [];
    let completionTokens = 0;
    results.forEach((r, i) => {
      completionTokens += r.completionTokens;
      if (r.finishReason !== "length" || r.completionTokens !== lines[i].maxTokens) {
        problems.push(`${r.id}: ${r.finishReason} after ${r.completionTokens} tokens${r.error ? `: ${r.error}` : ""}`);
      }
    });
    if (problems.length > 0) throw new Error(`the engine run is wrong (${problems.length} lines):\n  ${problems.slice(0, 20).join("\n  ")}`);
    const stats = engine.stats();
    return {
      lines: lines.length,
      completion_tokens: completionTokens,
      secs,
      out_tok_s: completionTokens / secs,
      load_secs: loadSecs,
      device_name: engine.model.deviceName,
      kv_blocks: engine.model.kvBlocks,
      steps: stats.steps,
      preemptions: stats.preemptions,
      prefix_caching: engineOptions.enablePrefixCaching ?? true,
      prompt_tokens: lines.reduce((n, l) => n + l.prompt.length, 0),
      prompt_tokens_computed: stats.promptTokensProcessed - before.promptTokensProcessed,
      prompt_tokens_cached: stats.promptTokensCached - before.promptTokensCached,
    };
  } finally {
    await engine.close();
  }
}
