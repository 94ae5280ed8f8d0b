// A model's tokenizer, from a GGUF file's tokenizer.ggml.* metadata and
// tokenizer.chat_template (gguf-tokenizer.ts turns them into the two files below),
// or from the files of its Hugging Face directory: tokenizer.json
// (run by @huggingface/tokenizers), tokenizer_config.json (special tokens, chat
// template), and where present chat_template.jinja, special_tokens_map.json and
// generation_config.json (end-of-sequence ids). Pure TypeScript: the coordinator
// can use it without loading the native engine.
//
// It follows transformers 5: when tokenizer.json exists its post-processor decides
// which special tokens encode() adds (transformers 5 ignores add_bos_token there),
// and a chat_template.jinja file takes priority over the config's template.
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { readFile } from "node:fs/promises";
import { join } from "node:path";

import { ChatTemplate, type ChatMessage } from "./chat-template.js";
import { InvalidArgumentError, ModelLoadError, UnsupportedError } from "./errors.js";
import { GgufFile, findGgufFile } from "./gguf-file.js";
import { ggufTokenizerParts } from "./gguf-tokenizer.js";

export type { ChatMessage } from "./chat-template.js";

export interface EncodeOptions {
  /** Add the tokens the tokenizer's post-processor adds (Gemma: <bos>). Default true. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Leave out special tokens such as <bos> and <end_of_turn>. Default false. */
  skipSpecialTokens?: boolean;
}

export interface ChatTemplateOptions {
  /** End with the header of the assistant's turn. Default false, as in transformers. */
  addGenerationPrompt?: boolean;
}

type Json = Record<string, unknown>;

export class Tokenizer {
  private constructor(
    private readonly hf: HfTokenizer,
    private readonly chatTemplate: ChatTemplate | null,
    private readonly chatTemplateProblem: string | null,
    private readonly specialTokens: Record<string, string>,
    readonly bosTokenId: number | null,
    readonly eosTokenIds: number[],
    readonly vocabSize: number,
  ) {}

  /**
   * Loads the tokenizer of a model: a GGUF file, a directory holding one (and no
   * config.json), or a Hugging Face directory. Throws ModelLoadError naming the file at fault.
   */
  static async load(path: string): Promise<Tokenizer> {
    const gguf = await findGgufFile(path);
    return gguf ? Tokenizer.fromGguf(gguf) : Tokenizer.fromDir(path);
  }

  /** Loads the tokenizer and chat template a GGUF file carries. */
  static async fromGguf(path: string): Promise<Tokenizer> {
    const parts = ggufTokenizerParts(await GgufFile.open(path));
    const template = parts.config.chat_template;
    return Tokenizer.build(`${path} (GGUF tokenizer)`, parts.tokenizerJson, parts.config, {}, parts.eosTokenIds,
      compileTemplate(`${path} tokenizer.chat_template`, null, template));
  }

  /** Loads the tokenizer of a model directory. Throws ModelLoadError naming the file at fault. */
  static async fromDir(modelDir: string): Promise<Tokenizer> {
    const tokenizerJson = await readJson(modelDir, "tokenizer.json", true);
    const config = (await readJson(modelDir, "tokenizer_config.json", false)) ?? {};
    const specialTokensMap = (await readJson(modelDir, "special_tokens_map.json", false)) ?? {};
    const generationConfig = await readJson(modelDir, "generation_config.json", false);
    const templateFile = await readFile(join(modelDir, "chat_template.jinja"), "utf8").catch(() => null);
    const eos = ([] as unknown[]).concat(generationConfig?.eos_token_id ?? []).filter((id) => typeof id === "number");
    const template = templateFile !== null
      ? compileTemplate(join(modelDir, "chat_template.jinja"), templateFile, null)
      : compileTemplate(`${join(modelDir, "tokenizer_config.json")} chat_template`, null, config.chat_template);
    return Tokenizer.build(join(modelDir, "tokenizer.json"), tokenizerJson as Json, config, specialTokensMap, eos, template);
  }

  private static build(
    where: string,
    tokenizerJson: Json,
    config: Json,
    specialTokensMap: Json,
    extraEos: number[],
    { template, problem }: { template: ChatTemplate | null; problem: string | null },
  ): Tokenizer {
    let hf: HfTokenizer;
    try {
      hf = new HfTokenizer(tokenizerJson as object, config);
    } catch (err) {
      throw new ModelLoadError(`${where}: cannot build the tokenizer: ${message(err)}`);
    }

    const specialTokens = collectSpecialTokens(config, specialTokensMap); // the map wins, as in transformers
    const idOf = (token: string | undefined): number | null =>
      token === undefined ? null : (hf.token_to_id(token) ?? null);
    const eos = new Set<number>();
    const configEos = idOf(specialTokens.eos_token);
    if (configEos !== null) eos.add(configEos);
    for (const id of extraEos) eos.add(id);
    let maxId = -1;
    for (const id of hf.get_vocab(true).values()) maxId = Math.max(maxId, id);

    return new Tokenizer(
      hf,
      template,
      problem,
      specialTokens,
      idOf(specialTokens.bos_token),
      [...eos].sort((a, b) => a - b),
      maxId + 1,
    );
  }

  private longestToken = -1;

  /**
   * The longest token of the vocabulary (added tokens included), in UTF-16 code units of
   * its vocabulary string. A piece of text never covers more characters than its token's
   * vocabulary string has (byte-level vocabularies spell one byte per character), so a
   * text of n characters has at least about n / maxTokenChars tokens: the worker refuses
   * a prompt that cannot fit the context without tokenizing megabytes.
   */
  get maxTokenChars(): number {
    if (this.longestToken < 0) {
      let longest = 1;
      for (const token of this.hf.get_vocab(true).keys()) longest = Math.max(longest, token.length);
      this.longestToken = longest;
    }
    return this.longestToken;
  }

  get hasChatTemplate(): boolean {
    return this.chatTemplate !== null;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== "string") throw new InvalidArgumentError("text: must be a string");
    return this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  decode(ids: number[] | Int32Array, opts: DecodeOptions = {}): string {
    const list = Array.from(ids);
    for (const id of list) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new InvalidArgumentError(`token id ${id} is not in the vocabulary (0..${this.vocabSize - 1})`);
      }
    }
    if (list.length === 0) return ""; // @huggingface/tokenizers refuses an empty list
    return this.hf.decode(list, { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  /** The conversation as the model's chat template renders it (a string, special tokens included). */
  applyChatTemplate(messages: ChatMessage[], opts: ChatTemplateOptions = {}): string {
    if (this.chatTemplateProblem) throw new UnsupportedError(this.chatTemplateProblem);
    if (!this.chatTemplate) {
      throw new InvalidArgumentError("this model has no chat template; send a prompt instead of messages");
    }
    return this.chatTemplate.render(messages, {
      addGenerationPrompt: opts.addGenerationPrompt ?? false,
      specialTokens: this.specialTokens,
    });
  }

  /**
   * Token ids of the rendered conversation, as transformers' apply_chat_template(tokenize=True)
   * gives them: the template writes the special tokens itself, so encode() adds none.
   */
  encodeChat(messages: ChatMessage[], opts: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, opts), { addSpecialTokens: false });
  }
}

async function readJson(dir: string, name: string, required: boolean): Promise<Json | null> {
  const path = join(dir, name);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if (!required && (err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new ModelLoadError(`${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? message(err)})`);
  }
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("not a JSON object");
    return value as Json;
  } catch (err) {
    throw new ModelLoadError(`${path}: not valid JSON (${message(err)})`);
  }
}

/** bos_token, eos_token, ... by name, as strings (a token may be written as {content: ...}). */
function collectSpecialTokens(...sources: Json[]): Record<string, string> {
  const out: Record<string, string> = {};
  const put = (key: string, value: unknown): void => {
    if (typeof value === "string") out[key] = value;
    else if (typeof value === "object" && value !== null && typeof (value as Json).content === "string") {
      out[key] = (value as Json).content as string;
    }
  };
  for (const source of sources) {
    for (const [key, value] of Object.entries(source)) {
      if (key.endsWith("_token")) put(key, value);
    }
    const extra = source.extra_special_tokens;
    if (typeof extra === "object" && extra !== null && !Array.isArray(extra)) {
      for (const [key, value] of Object.entries(extra)) put(key, value);
    }
  }
  return out;
}

/** A template source (chat_template.jinja's text, else the config's: a string, or named ones with "default"), compiled. */
function compileTemplate(
  where: string,
  file: string | null,
  fromConfig: unknown,
): { template: ChatTemplate | null; problem: string | null } {
  let source: string | null = file;
  if (source === null) {
    if (typeof fromConfig === "string") {
      source = fromConfig;
    } else if (Array.isArray(fromConfig)) {
      const named = fromConfig.find((t) => (t as Json)?.name === "default") as Json | undefined;
      if (typeof named?.template === "string") source = named.template;
      else return { template: null, problem: `${where}: has several templates and none named "default"` };
    }
  }
  if (source === null) return { template: null, problem: null };
  try {
    return { template: ChatTemplate.compile(source), problem: null };
  } catch (err) {
    return { template: null, problem: `${where}: the template cannot be parsed: ${message(err)}` };
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
