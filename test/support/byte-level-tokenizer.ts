// Tokenizer files for the end-to-end test model: a byte-level BPE with no merges over
// printable ASCII, tab and newline (one character, one token; anything else is <unk>),
// four chat special tokens, a post-processor that adds <s> like Llama's, and a small
// chat template. Every generated token decodes to its own character, so comparing
// completion texts compares the tokens themselves. Written in the
// Hugging Face formats (tokenizer.json, tokenizer_config.json), so the worker and the
// tests load it through the same Tokenizer.fromDir as a downloaded model's.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

/** Special tokens first, then the characters: ids 0..BYTE_LEVEL_VOCAB_SIZE-1. */
const SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"] as const;
const BYTES = [9, 10, ...Array.from({ length: 126 - 32 + 1 }, (_, i) => 32 + i)];
export const BYTE_LEVEL_VOCAB_SIZE = SPECIAL_TOKENS.length + BYTES.length;
export const BOS_ID = 1;
export const EOS_ID = 2;

const CHAT_TEMPLATE =
  "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}" +
  "{% if add_generation_prompt %}<|assistant|>{% endif %}";

/** GPT-2's byte -> printable character table, which byte-level BPE vocabularies use. */
function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const table: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = printable.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++);
  }
  return table;
}

export async function writeByteLevelTokenizer(dir: string): Promise<void> {
  const vocab: Record<string, number> = {};
  SPECIAL_TOKENS.forEach((t, id) => (vocab[t] = id));
  const table = bytesToUnicode();
  BYTES.forEach((b, i) => (vocab[table[b]!] = SPECIAL_TOKENS.length + i));
  const addedTokens = SPECIAL_TOKENS.map((content, id) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: "<s>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "<s>", type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { "<s>": { id: "<s>", ids: [BOS_ID], tokens: ["<s>"] } },
    },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
  const config = {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: "<s>",
    eos_token: "</s>",
    unk_token: "<unk>",
    model_max_length: 512,
    tokenizer_class: "PreTrainedTokenizerFast",
    chat_template: CHAT_TEMPLATE,
  };
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
  await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify(config, null, 2));
}
