// A small byte-level BPE tokenizer.json (GPT-2 style, as Llama 3 and Qwen2 use):
// special tokens at the model's bos/eos ids, the 256 bytes, then merged pieces up
// to the vocabulary size, so structured-output tests run on a 1000-token model
// and @huggingface/tokenizers decodes its output independently of the engine.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

function byteToUnicode(): string[] {
  const table: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; ++b) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    table.push(String.fromCodePoint(printable ? b : 256 + extra++));
  }
  return table;
}

const PIECES = ['{"', '":', '","', '"}', '":"', '},{', '":[', '],"', 'true', 'false', 'null', 'name', 'city', ' the', ' and',
  'value', 'kind', '\\n', '\\u00', '123', '0.5', '-1', 'e+1', 'positive', 'negative', 'neutral', 'admin', 'user', 'hello', ' world'];

export async function writeByteLevelTokenizer(dir: string, vocabSize: number, special: Record<string, number>): Promise<void> {
  const enc = byteToUnicode();
  const vocab = new Map<string, number>();
  const specialIds = new Set(Object.values(special));
  for (const [content, id] of Object.entries(special)) vocab.set(content, id);
  let next = 0;
  const add = (token: string): boolean => {
    if (vocab.has(token)) return false;
    while (specialIds.has(next)) ++next;
    if (next >= vocabSize) return false;
    vocab.set(token, next++);
    return true;
  };
  for (const ch of enc) add(ch);
  const merges: string[] = [];
  const merge = (a: string, b: string) => {
    if (add(a + b)) merges.push(`${a} ${b}`);
  };
  for (const piece of PIECES) {
    const chars = [...Buffer.from(piece, "utf8")].map((b) => enc[b]!);
    let acc = chars[0]!;
    for (const c of chars.slice(1)) {
      merge(acc, c);
      acc += c;
    }
  }
  // Fill the rest with pairs of existing tokens (a deterministic walk).
  const tokens = [...vocab.keys()].filter((t) => !(t in special));
  for (let i = 0; vocab.size < vocabSize && i < 100000; ++i) {
    const a = tokens[(i * 7919) % tokens.length]!;
    const b = tokens[(i * 104729 + 13) % Math.min(tokens.length, 300)]!;
    if ((a + b).length > 12) continue;
    const before = vocab.size;
    merge(a, b);
    if (vocab.size > before) tokens.push(a + b);
  }
  const json = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: Object.entries(special).map(([content, id]) => ({
      id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: Object.fromEntries(vocab), merges,
    },
  };
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify(json));
}
