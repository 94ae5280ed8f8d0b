#!/usr/bin/env node
// The steps of scripts/gpu-pipeline.sh that need JavaScript, in one program (bundled
// into .carry/pipeline, so the GPU machine needs only `node`):
//
//   free-ports N                          N free TCP ports on 127.0.0.1, one a line
//   wait-tcp PORT [--timeout-s S]         until something listens on 127.0.0.1:PORT
//   wait-worker --url URL [--timeout-s S] until the coordinator has a worker connected
//   make-batch --model-dir D --model NAME --lines N --prompt-len L --max-tokens M --seed S --out FILE
//              [--workload shared-prefix [--prefixes 8 --prefix-min 500 --prefix-max 1500
//               --suffix-min 20 --suffix-max 150 --out-min 100 --out-max 250]]
//              [--workload a-sampled [--sampled-every 2 --temperature 0.8 --top-p 0.95]]
//   engine --input FILE [--warmup FILE] --model-dir D --device DEV --max-seqs N [--max-batch-tokens T] [--threads T]
//          [--no-prefix-caching] --report FILE
//   submit --url URL --api-key K --input FILE [--expect-tokens M | --expect-input-max-tokens] [--expect-prompt-tokens L]
//          [--report FILE] [--poll-ms 50]
//   summary --engine FILE [--engine-off FILE] --pipeline FILE [--set KEY=VALUE ...]
//          one JSON line: both speeds and their ratio, the prompt tokens computed and cached in
//          each run (and with --engine-off, the engine alone with caching off and on/off)
//   compare --engine FILE --pipeline FILE --engine-b FILE --pipeline-b FILE [--set KEY=VALUE ...]
//          one JSON line: run b's tokens/s over the first's, engine alone and through the pipeline
import { readFileSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { parseArgs } from "node:util";
import { freePort } from "../free-port.mjs";
import { engineAlone } from "./engine-alone.mjs";
import { makeBatch } from "./make-batch.mjs";
import { submitBatch } from "./submit-batch.mjs";

const log = (msg) => process.stderr.write(`${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function int(values, key, dflt) {
  const v = values[key] ?? dflt;
  if (v === undefined) throw new Error(`--${key} is required`);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${key}: expected a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}
function num(values, key, dflt) {
  const v = values[key] ?? dflt;
  const n = Number(v);
  if (v === undefined || v === "" || !Number.isFinite(n) || n < 0) throw new Error(`--${key}: expected a non-negative number, got ${JSON.stringify(v)}`);
  return n;
}
function str(values, key, dflt) {
  const v = values[key] ?? dflt;
  if (v === undefined || v === "") throw new Error(`--${key} is required`);
  return v;
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = createConnection({ host: "127.0.0.1", port });
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

async function waitFor(what, timeoutS, check) {
  const deadline = Date.now() + timeoutS * 1000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutS} s waiting for ${what}`);
    await sleep(100);
  }
}

/** The --set KEY=VALUE pairs as an object (numbers where they look like numbers). */
function sets(values) {
  const extra = {};
  for (const kv of values.set ?? []) {
    const eq = kv.indexOf("=");
    const value = kv.slice(eq + 1);
    extra[kv.slice(0, eq)] = /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value;
  }
  return extra;
}

const commands = {
  async "free-ports"(args) {
    const n = Number(args.positionals[0] ?? 1);
    const ports = new Set();
    while (ports.size < n) ports.add(await freePort());
    console.log([...ports].join("\n"));
  },

  async "wait-tcp"(args) {
    const port = Number(args.positionals[0]);
    await waitFor(`127.0.0.1:${port}`, int(args.values, "timeout-s", 60), () => canConnect(port));
  },

  async "wait-worker"(args) {
    const url = str(args.values, "url");
    const connected = async () => {
      const res = await fetch(`${url}/metrics`).catch(() => null);
      if (!res?.ok) return false;
      const m = /^batchgen_coordinator_workers_connected(?:\{[^}]*\})? (\d+(?:\.\d+)?)$/m.exec(await res.text());
      return m !== null && Number(m[1]) >= 1;
    };
    await waitFor("a worker to connect to the coordinator", int(args.values, "timeout-s", 600), connected);
  },

  async "make-batch"(args) {
    const v = args.values;
    const workload = v.workload ?? "a";
    if (!["a", "a-sampled", "shared-prefix"].includes(workload)) throw new Error(`--workload: a, a-sampled or shared-prefix, got ${workload}`);
    const shared =
      workload === "shared-prefix"
        ? {
            prefixes: int(v, "prefixes", "8"),
            prefixMin: int(v, "prefix-min", "500"),
            prefixMax: int(v, "prefix-max", "1500"),
            suffixMin: int(v, "suffix-min", "20"),
            suffixMax: int(v, "suffix-max", "150"),
            outMin: int(v, "out-min", "100"),
            outMax: int(v, "out-max", "250"),
          }
        : undefined;
    const sampled =
      workload === "a-sampled"
        ? { every: Math.max(1, int(v, "sampled-every", "2")), temperature: num(v, "temperature", "0.8"), topP: num(v, "top-p", "0.95") }
        : undefined;
    const made = makeBatch({
      modelDir: str(v, "model-dir"),
      model: str(v, "model"),
      lines: int(v, "lines"),
      promptLen: shared ? 0 : int(v, "prompt-len"),
      maxTokens: shared ? 0 : int(v, "max-tokens"),
      seed: int(v, "seed", "1"),
      out: str(v, "out"),
      shared,
      sampled,
    });
    log(`make-batch (${workload}): ${made.lines} lines, ${made.promptTokens} prompt ids, ${made.outTokens} output tokens (${made.bytes} bytes)`);
  },

  async engine(args) {
    const v = args.values;
    const engineOptions = { modelDir: str(v, "model-dir"), device: str(v, "device"), maxSeqs: int(v, "max-seqs") };
    if (v["max-batch-tokens"] !== undefined) engineOptions.maxBatchTokens = int(v, "max-batch-tokens");
    if (v.threads !== undefined) engineOptions.threads = int(v, "threads");
    if (v["no-prefix-caching"]) engineOptions.enablePrefixCaching = false;
    const report = await engineAlone({ input: str(v, "input"), warmup: v.warmup, engineOptions, log });
    writeFileSync(str(v, "report"), JSON.stringify(report) + "\n");
    log(`engine: ${report.completion_tokens} tokens in ${report.secs.toFixed(2)} s = ${report.out_tok_s.toFixed(1)} tok/s`);
  },

  async submit(args) {
    const v = args.values;
    const report = await submitBatch({
      url: str(v, "url"),
      apiKey: str(v, "api-key"),
      input: str(v, "input"),
      endpoint: "/v1/completions",
      pollMs: int(v, "poll-ms", "50"),
      timeoutS: int(v, "timeout-s", "1800"),
      expectTokens: v["expect-tokens"] === undefined ? undefined : int(v, "expect-tokens"),
      expectPromptTokens: v["expect-prompt-tokens"] === undefined ? undefined : int(v, "expect-prompt-tokens"),
      expectInputMaxTokens: v["expect-input-max-tokens"] === true,
      log,
    });
    if (v.report !== undefined) writeFileSync(v.report, JSON.stringify(report) + "\n");
    log(`submit: ${report.completion_tokens} tokens in ${report.secs.toFixed(2)} s = ${report.out_tok_s.toFixed(1)} tok/s (coordinator: ${report.coordinator_tok_s})`);
  },

  async summary(args) {
    const v = args.values;
    const engine = JSON.parse(readFileSync(str(v, "engine"), "utf8"));
    const pipeline = JSON.parse(readFileSync(str(v, "pipeline"), "utf8"));
    const off = v["engine-off"] === undefined ? null : JSON.parse(readFileSync(v["engine-off"], "utf8"));
    if (off && off.prefix_caching !== false) throw new Error(`--engine-off ${v["engine-off"]}: a run with prefix caching on`);
    const extra = sets(v);
    const round = (x) => Math.round(x * 10) / 10;
    console.log(
      JSON.stringify({
        label: "pipeline-vs-engine",
        ...extra,
        device_name: engine.device_name,
        lines: pipeline.lines,
        completion_tokens: pipeline.completion_tokens,
        pipeline_secs: Math.round(pipeline.secs * 1000) / 1000,
        pipeline_out_tok_s: round(pipeline.out_tok_s),
        pipeline_coordinator_tok_s: pipeline.coordinator_tok_s,
        engine_secs: Math.round(engine.secs * 1000) / 1000,
        engine_out_tok_s: round(engine.out_tok_s),
        prompt_tokens: pipeline.prompt_tokens,
        engine_prompt_tokens_computed: engine.prompt_tokens_computed,
        engine_prompt_tokens_cached: engine.prompt_tokens_cached,
        pipeline_prompt_tokens_computed: pipeline.prompt_tokens_computed,
        pipeline_prompt_tokens_cached: pipeline.prompt_tokens_cached,
        ratio: Math.round((pipeline.out_tok_s / engine.out_tok_s) * 1000) / 1000,
        ...(off && {
          engine_caching_off_secs: Math.round(off.secs * 1000) / 1000,
          engine_caching_off_out_tok_s: round(off.out_tok_s),
          engine_caching_off_prompt_tokens_computed: off.prompt_tokens_computed,
          engine_caching_on_vs_off: Math.round((engine.out_tok_s / off.out_tok_s) * 1000) / 1000,
        }),
      }),
    );
  },

  async compare(args) {
    const v = args.values;
    const read = (key) => JSON.parse(readFileSync(str(v, key), "utf8"));
    const [engine, pipeline, engineB, pipelineB] = ["engine", "pipeline", "engine-b", "pipeline-b"].map(read);
    const r3 = (x) => Math.round(x * 1000) / 1000;
    console.log(
      JSON.stringify({
        ...sets(v),
        engine_out_tok_s: Math.round(engine.out_tok_s * 10) / 10,
        engine_b_out_tok_s: Math.round(engineB.out_tok_s * 10) / 10,
        engine_ratio: r3(engineB.out_tok_s / engine.out_tok_s),
        pipeline_out_tok_s: Math.round(pipeline.out_tok_s * 10) / 10,
        pipeline_b_out_tok_s: Math.round(pipelineB.out_tok_s * 10) / 10,
        pipeline_ratio: r3(pipelineB.out_tok_s / pipeline.out_tok_s),
      }),
    );
  },
};

async function main() {
  const [name, ...rest] = process.argv.slice(2);
  const command = commands[name];
  if (!command) {
    log(`usage: pipeline-tool ${Object.keys(commands).join("|")} ...`);
    process.exit(2);
  }
  const args = parseArgs({
    args: rest,
    allowPositionals: true,
    strict: true,
    options: Object.fromEntries(
      ["timeout-s", "warmup", "url", "model-dir", "model", "lines", "prompt-len", "max-tokens", "seed", "out", "input", "device", "max-seqs",
        "max-batch-tokens", "threads", "report", "api-key", "poll-ms", "expect-tokens", "expect-prompt-tokens", "engine", "engine-off", "pipeline", "engine-b", "pipeline-b",
        "workload", "prefixes", "prefix-min", "prefix-max", "suffix-min", "suffix-max", "out-min", "out-max", "sampled-every",
        "temperature", "top-p"]
        .map((k) => [k, { type: "string" }])
        .concat([["set", { type: "string", multiple: true }]])
        .concat(["no-prefix-caching", "expect-input-max-tokens"].map((k) => [k, { type: "boolean" }])),
    ),
  });
  await command(args);
}

main().catch((err) => {
  log(`pipeline-tool: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
