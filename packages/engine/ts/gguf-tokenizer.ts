// A GGUF file's tokenizer (tokenizer.ggml.* metadata) as the tokenizer.json and
// tokenizer_config.json a Hugging Face directory would hold, so one Tokenizer
// class runs both. Two vocabularies are in GGUF files:
//   "llama" (SentencePiece: Llama 2, Gemma): tokens with scores and no merges. The
//     merges are rebuilt from the scores as transformers' SentencePiece converter
//     builds them (every split of a piece into two pieces, ranked by the piece's
//     score), which gives the BPE tokenizer.json that Gemma's own checkpoints ship.
//   "gpt2" (byte-level BPE: Llama 3, Qwen2/3): tokens and merges, with the
//     pre-tokenizer that tokenizer.ggml.pre names.
// Token types (llama.cpp's): 1 normal, 2 unknown, 3 control, 4 user-defined,
// 5 unused, 6 byte. Control tokens become special added tokens, user-defined ones
// plain added tokens (matched before the model, as in the Hugging Face files).
import type { GgufFile } from "./gguf-file.js";
import { ModelLoadError, UnsupportedError } from "./errors.js";

export interface GgufTokenizerParts {
  tokenizerJson: Record<string, unknown>;
  /** What tokenizer_config.json would say: special tokens by name, chat_template when the file has one. */
  config: Record<string, unknown>;
  /** Token ids that end generation: eos, and the end-of-turn tokens of the vocabulary. */
  eosTokenIds: number[];
}

/** The end-of-turn tokens llama.cpp also treats as end of generation (kept in step with src/model/gguf_model.cpp). */
const END_OF_TURN_TOKENS = ["<end_of_turn>", "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|im_end|>", "<|endoftext|>"];

// The pre-tokenizer split of each byte-level vocabulary llama.cpp names (tokenizer.ggml.pre).
const LLAMA3_SPLIT = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN2_SPLIT = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const BPE_PRE: Record<string, { split: string; nfc: boolean }> = {
  "llama-bpe": { split: LLAMA3_SPLIT, nfc: false },
  llama3: { split: LLAMA3_SPLIT, nfc: false },
  qwen2: { split: QWEN2_SPLIT, nfc: true },
};

export function ggufTokenizerParts(file: GgufFile): GgufTokenizerParts {
  const where = `${file.path}: GGUF tokenizer`;
  const model = file.string("tokenizer.ggml.model");
  const rawTokens = file.get("tokenizer.ggml.tokens");
  if (!model || !Array.isArray(rawTokens)) {
    throw new ModelLoadError(`${where}: tokenizer.ggml.model and tokenizer.ggml.tokens are missing; the file has no vocabulary`);
  }
  const types = numbers(file.get("tokenizer.ggml.token_type"), rawTokens.length, 1);
  const id = (key: string): number | null => {
    const v = file.number(`tokenizer.ggml.${key}`);
    return v === undefined || v < 0 || v >= rawTokens.length ? null : v;
  };
  const flag = (key: string, fallback: boolean): boolean => {
    const v = file.get(`tokenizer.ggml.${key}`);
    return typeof v === "boolean" ? v : fallback;
  };

  let tokens: string[];
  let modelJson: Record<string, unknown>;
  let normalizer: unknown = null;
  let preTokenizer: unknown = null;
  let decoder: unknown;
  let addBos: boolean;
  if (model === "llama") {
    // transformers' GGUF converter writes space-only pieces with ▁, as SentencePiece has them.
    tokens = rawTokens.map((t) => (typeof t === "string" && t.length > 0 && t.trim() === "" && t.includes(" ") ? "▁".repeat(t.length) : String(t)));
    // llama.cpp writes -1000 for control and user-defined pieces; SentencePiece
    // (whose order the merges follow) scores them 0.
    const scores = numbers(file.get("tokenizer.ggml.scores"), tokens.length, 0).map((s, i) =>
      types[i] === 3 || types[i] === 4 ? 0 : s,
    );
    const vocab = vocabOf(tokens);
    const unk = id("unknown_token_id");
    modelJson = {
      type: "BPE", dropout: null, unk_token: unk === null ? null : tokens[unk], continuing_subword_prefix: null,
      end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false,
      vocab, merges: sentencePieceMerges(tokens, scores, vocab),
    };
    const prefix = flag("add_space_prefix", true);
    const replace = { type: "Replace", pattern: { String: " " }, content: "▁" };
    normalizer = prefix ? { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "▁" }, replace] } : replace;
    decoder = {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" },
        ...(prefix ? [{ type: "Strip", content: " ", start: 1, stop: 0 }] : []),
      ],
    };
    addBos = flag("add_bos_token", true);
  } else if (model === "gpt2") {
    tokens = rawTokens.map(String);
    const merges = file.get("tokenizer.ggml.merges");
    if (!Array.isArray(merges)) throw new ModelLoadError(`${where}: a "gpt2" vocabulary needs tokenizer.ggml.merges`);
    const preName = file.string("tokenizer.ggml.pre") ?? "default";
    const pre = BPE_PRE[preName];
    if (!pre) {
      throw new UnsupportedError(`${where}: pre-tokenizer "${preName}" is not supported (${Object.keys(BPE_PRE).join(", ")} are)`);
    }
    modelJson = {
      type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: true, vocab: vocabOf(tokens),
      merges: merges.map((m) => String(m).split(" ")),
    };
    if (pre.nfc) normalizer = { type: "NFC" };
    preTokenizer = {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: pre.split }, behavior: "Isolated", invert: false },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    };
    decoder = { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true };
    addBos = flag("add_bos_token", false);
  } else {
    throw new UnsupportedError(`${where}: tokenizer model "${model}" is not supported ("llama" and "gpt2" are)`);
  }

  const bos = id("bos_token_id");
  const eos = id("eos_token_id");
  const addEos = flag("add_eos_token", false);
  const template = (seq: string): unknown[] => [
    ...(addBos && bos !== null ? [{ SpecialToken: { id: tokens[bos], type_id: 0 } }] : []),
    { Sequence: { id: seq, type_id: 0 } },
    ...(addEos && eos !== null ? [{ SpecialToken: { id: tokens[eos], type_id: 0 } }] : []),
  ];
  const specials: Record<string, unknown> = {};
  for (const t of [addBos ? bos : null, addEos ? eos : null]) {
    if (t !== null) specials[tokens[t]!] = { id: tokens[t], ids: [t], tokens: [tokens[t]] };
  }
  const addedTokens = [];
  for (let i = 0; i < tokens.length; i++) {
    if (types[i] !== 3 && types[i] !== 4) continue;
    addedTokens.push({
      id: i, content: tokens[i], single_word: false, lstrip: false, rstrip: false, normalized: false, special: types[i] === 3,
    });
  }
  const tokenizerJson = {
    version: "1.0", truncation: null, padding: null, added_tokens: addedTokens, normalizer, pre_tokenizer: preTokenizer,
    post_processor: { type: "TemplateProcessing", single: template("A"), pair: [...template("A"), ...template("B")], special_tokens: specials },
    decoder, model: modelJson,
  };

  const config: Record<string, unknown> = {};
  const name = (key: string, configKey: string): void => {
    const i = id(key);
    if (i !== null) config[configKey] = tokens[i];
  };
  name("bos_token_id", "bos_token");
  name("eos_token_id", "eos_token");
  name("unknown_token_id", "unk_token");
  name("padding_token_id", "pad_token");
  const chatTemplate = file.string("tokenizer.chat_template");
  if (chatTemplate !== undefined) config.chat_template = chatTemplate;

  const eosIds = new Set<number>();
  for (const key of ["eos_token_id", "eot_token_id", "eom_token_id"]) {
    const i = id(key);
    if (i !== null) eosIds.add(i);
  }
  for (const [i, t] of tokens.entries()) if (END_OF_TURN_TOKENS.includes(t)) eosIds.add(i);
  return { tokenizerJson, config, eosTokenIds: [...eosIds].sort((a, b) => a - b) };
}

function numbers(value: unknown, n: number, fallback: number): number[] {
  if (!Array.isArray(value)) return new Array<number>(n).fill(fallback);
  return value.map((v) => Number(v));
}

function vocabOf(tokens: string[]): Record<string, number> {
  const vocab: Record<string, number> = Object.create(null) as Record<string, number>;
  for (const [i, t] of tokens.entries()) if (!(t in vocab)) vocab[t] = i;
  return vocab;
}

/**
 * transformers' generate_merges for a SentencePiece model with scores: for each
 * piece (in id order), every split into two pieces of the vocabulary, ordered by
 * the halves' ids; then all of them ranked by (the piece's score, left length,
 * right length) descending, ties kept in that order. Lengths count code points.
 */
function sentencePieceMerges(tokens: string[], scores: number[], vocab: Record<string, number>): [string, string][] {
  const merges: { l: string; r: string; score: number; ll: number; rl: number; order: number }[] = [];
  const seen = new Set<string>();
  for (const [i, piece] of tokens.entries()) {
    if (seen.has(piece)) continue; // a repeated piece is one vocabulary entry (vocabOf keeps its first id)
    seen.add(piece);
    const points = Array.from(piece);
    const local: { l: string; r: string; li: number; ri: number; ll: number; rl: number }[] = [];
    for (let k = 1; k < points.length; k++) {
      const l = points.slice(0, k).join("");
      const r = points.slice(k).join("");
      const li = vocab[l];
      const ri = vocab[r];
      if (li !== undefined && ri !== undefined) local.push({ l, r, li, ri, ll: k, rl: points.length - k });
    }
    local.sort((a, b) => a.li - b.li || a.ri - b.ri);
    for (const m of local) merges.push({ l: m.l, r: m.r, score: scores[i] ?? 0, ll: m.ll, rl: m.rl, order: merges.length });
  }
  merges.sort((a, b) => b.score - a.score || b.ll - a.ll || b.rl - a.rl || a.order - b.order);
  return merges.map((m) => [m.l, m.r]);
}
