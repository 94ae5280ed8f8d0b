// The tokenizer surface the worker uses: @batchgen/engine/tokenizer's Tokenizer, loaded
// without the native addon so unit tests and the control-plane benchmark need no build
// of the engine.
import type { ChatMessage } from "@batchgen/engine/tokenizer";

export type { ChatMessage };

export interface WorkerTokenizer {
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  applyChatTemplate(messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean }): string;
  /** The longest vocabulary token in characters (see checkPromptChars); unknown: no early length check. */
  readonly maxTokenChars?: number;
}

// A specifier in a variable: bundlers and vitest leave the import to run time.
const TOKENIZER_MODULE = "@batchgen/engine/tokenizer";

/** The tokenizer of a Hugging Face model directory or a GGUF file (or a directory holding one). */
export async function loadWorkerTokenizer(modelDir: string): Promise<WorkerTokenizer> {
  const { Tokenizer } = (await import(TOKENIZER_MODULE)) as typeof import("@batchgen/engine/tokenizer");
  return Tokenizer.load(modelDir);
}
