// The real Gemma 3 270M GGUF (Q4_K_M) on the CPU engine against transformers on the
// same file (tools/gguf_reference.py: transformers' own GGUF loader, f32, eager
// attention): the same 32 greedy tokens on 24 real prompts, batched, and the
// logits of each prompt's last position within LOGIT_TOLERANCE.
//
// The tolerance: both sides dequantize the file to the same f32 weights (our
// dequantizers are bit-exact with the gguf package, gguf-dequant.test.ts) and run
// f32, so what differs is summation order (our blocked matmuls and attention
// against torch's) over 18 layers: measured max |diff| 4.3e-5, 2.0e-6 of the
// row's largest |logit| (printed on each run). The bound, 1e-4 of it, is the
// issue's bound for the random-weight models and leaves fifty times the measure.
// Greedy tokens are compared exactly; the smallest top-2 margin on these prompts is
// printed too (measured 0.014, far above the logit error, so no token is near a flip).
//
// transformers takes ~2 minutes to load the GGUF on 2 cores, so its answers are
// kept under os.tmpdir() keyed by the script, the prompts and the file's size.
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { ChatTemplate } from "../ts/chat-template.js";
import { gemmaTokenizerFiles } from "../ts/gemma-tokenizer-files.js";
import { Engine, Tokenizer } from "../ts/index.js";
import { realGgufPath } from "./real-gguf.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const SCRIPT = join(HERE, "../tools/gguf_reference.py");
const REPO = join(HERE, "../../..");
const NEW_TOKENS = 32;
/** Max |ours - transformers| over a prompt's last-position logits, as a share of that row's max |logit|. */
const LOGIT_TOLERANCE = 1e-4;

interface Reference {
  tokens: number[][];
  margins: number[];
  logits: Float32Array[];
}

let gguf: string;
let tok: Tokenizer;
let prompts: number[][];
let engine: Engine;
let ref: Reference;

async function questions(): Promise<string[]> {
  const lines = readFileSync(join(REPO, "examples/questions.jsonl"), "utf8").trim().split("\n");
  return lines.map((l) => (JSON.parse(l) as { body: { prompt: string } }).body.prompt);
}

async function reference(): Promise<Reference> {
  const script = readFileSync(SCRIPT, "utf8");
  const key = createHash("sha256").update(script).update(JSON.stringify(prompts)).update(String(statSync(gguf).size))
    .digest("hex").slice(0, 16);
  const dir = join(tmpdir(), `bg-gguf-reference-${key}`);
  if (!existsSync(join(dir, "result.json"))) {
    const work = `${dir}.${process.pid}`;
    await rm(work, { recursive: true, force: true });
    await mkdir(work, { recursive: true });
    const python = process.env.BATCHGEN_PYTHON ?? join(REPO, ".venv/bin/python");
    const stdout = execFileSync(python, [SCRIPT], {
      input: JSON.stringify({ gguf, prompts, new_tokens: NEW_TOKENS, out: work }),
      encoding: "utf8",
      maxBuffer: 64 << 20,
      env: { ...process.env, TRANSFORMERS_VERBOSITY: "error", HF_HUB_OFFLINE: "1", TQDM_DISABLE: "1" },
    });
    await writeFile(join(work, "result.json"), stdout);
    await rename(work, dir).catch(async () => rm(work, { recursive: true, force: true }));
  }
  const r = JSON.parse(await readFile(join(dir, "result.json"), "utf8")) as { tokens: number[][]; margins: number[]; seconds: unknown };
  console.log("transformers reference:", JSON.stringify(r.seconds), dir);
  const logits = await Promise.all(prompts.map(async (_, i) => {
    const b = await readFile(join(dir, `logits-${i}.f32`));
    return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  }));
  return { tokens: r.tokens, margins: r.margins, logits };
}

beforeAll(async () => {
  gguf = realGgufPath();
  tok = await Tokenizer.load(gguf);
  const qs = await questions();
  // Half as plain question/answer text (the file is the pretrained model, which
  // answers those), half through Gemma 3's chat template.
  const files = await gemmaTokenizerFiles();
  const config = JSON.parse(readFileSync(join(files.dir, "tokenizer_config.json"), "utf8")) as { chat_template: string };
  const chat = ChatTemplate.compile(config.chat_template);
  prompts = [
    ...qs.slice(0, 12).map((q) => tok.encode(q)),
    ...qs.slice(12, 24).map((q) => tok.encode(chat.render(
      [{ role: "user", content: q.replace(/^Question: /, "").replace(/\nAnswer:$/, "") }],
      { addGenerationPrompt: true, specialTokens: { bos_token: "<bos>" } },
    ), { addSpecialTokens: false })),
  ];
  ref = await reference();
  engine = await Engine.load({ modelDir: gguf, device: "cpu", threads: 2, kvCacheBlocks: 512, maxModelLen: 512 });
}, 900_000);

afterAll(async () => {
  await engine?.close();
});

describe("Gemma 3 270M GGUF against transformers", () => {
  it("loads as Gemma 3 with the file's shapes and end-of-turn tokens", () => {
    expect(engine.model.architecture).toBe("Gemma3ForCausalLM");
    expect(engine.model.vocabSize).toBe(262144);
    expect(engine.model.numLayers).toBe(18);
    expect(engine.model.eosTokenIds).toEqual([1, 106]);
  });

  it("gives transformers' 32 greedy tokens on 24 real prompts, batched", async () => {
    expect(prompts.length).toBe(24);
    const results = await Promise.all(prompts.map((prompt) =>
      engine.generate({ prompt, maxTokens: NEW_TOKENS, temperature: 0, ignoreEos: true })));
    for (const [i, r] of results.entries()) {
      expect(r.tokens, `prompt ${i}: ${JSON.stringify(tok.decode(prompts[i]!))}`).toEqual(ref.tokens[i]);
    }
    console.log("smallest top-2 margin over the 24 x 32 steps:", Math.min(...ref.margins).toFixed(4));
    // Real answers: the first prompt is the capital of France.
    expect(tok.decode(results[0]!.tokens)).toMatch(/^ Paris/);
  }, 600_000);

  it(`matches transformers' last-position logits within ${LOGIT_TOLERANCE} of their range`, async () => {
    let worstRel = 0;
    let worstAbs = 0;
    for (const [i, prompt] of prompts.entries()) {
      const all = await engine.promptLogits(prompt);
      const vocab = all.length / prompt.length;
      const ours = all.subarray((prompt.length - 1) * vocab);
      const theirs = ref.logits[i]!;
      expect(ours.length).toBe(theirs.length);
      let maxAbs = 0;
      let scale = 0;
      for (let j = 0; j < vocab; j++) {
        maxAbs = Math.max(maxAbs, Math.abs(ours[j]! - theirs[j]!));
        scale = Math.max(scale, Math.abs(theirs[j]!));
      }
      worstAbs = Math.max(worstAbs, maxAbs);
      worstRel = Math.max(worstRel, maxAbs / scale);
    }
    console.log(`logits: max |diff| ${worstAbs.toExponential(2)}, relative to max |logit| ${worstRel.toExponential(2)}`);
    expect(worstRel).toBeLessThan(LOGIT_TOLERANCE);
  }, 600_000);
});
