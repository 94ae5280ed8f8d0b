// A parsed request -> the prompt's token ids, as Hugging Face transformers would make
// them: a chat (or a /v1/responses conversation) is rendered with the model's chat template (generation prompt added)
// and tokenized without adding special tokens (the template writes <bos> itself); a
// completion prompt (and each embeddings input, as sentence-transformers tokenizes it)
// is tokenized with the special tokens the model's tokenizer adds (BOS where
// tokenizer_config.json's add_bos_token says so). Token-id prompts pass as is.
import type { ParsedRequest } from "@batchgen/core";
import { LineFailure } from "./line-failure.js";
import type { WorkerTokenizer } from "./worker-tokenizer.js";

/** The parts of a request that make its prompt (what a tokenizer thread is sent). */
export type PromptRequest = Pick<ParsedRequest, "kind" | "messages" | "prompt" | "promptTokenIds">;

/** How long a prompt may be: the context, and the longest token of the vocabulary in characters. */
export interface PromptLimit {
  maxModelLen: number;
  maxTokenChars: number;
}

// Unicode normalization can shrink text (composition of combining marks and Hangul jamo,
// at most about 3 characters into 1): the bound leaves room for that.
const NORMALIZATION_SLACK = 4;

export function promptTokens(request: PromptRequest, tokenizer: WorkerTokenizer, limit?: PromptLimit): number[] {
  if (request.kind === "chat" || request.kind === "response") {
    let text: string;
    try {
      text = tokenizer.applyChatTemplate(request.messages ?? [], { addGenerationPrompt: true });
    } catch (err) {
      // Templates raise for conversations they do not accept (e.g. a system role, or
      // roles that do not alternate): that is the request's fault, not the worker's.
      const why = err instanceof Error ? err.message : String(err);
      throw new LineFailure("invalid_request", `The model's chat template rejected the messages: ${why}`);
    }
    if (limit) checkPromptChars(text, limit, "messages");
    return tokenizer.encode(text, { addSpecialTokens: false });
  }
  if (request.promptTokenIds) return [...request.promptTokenIds];
  const text = request.prompt ?? "";
  if (limit) checkPromptChars(text, limit, "prompt");
  return tokenizer.encode(text, { addSpecialTokens: true });
}

/**
 * A text too long to fit the context whatever its tokens is refused before it is
 * tokenized: tokenizing megabytes takes seconds per megabyte and gigabytes of memory,
 * for an answer known in advance (context_length_exceeded, as the engine would say).
 */
export function checkPromptChars(text: string, limit: PromptLimit, where: "messages" | "prompt"): void {
  const atLeast = Math.ceil(text.length / (limit.maxTokenChars * NORMALIZATION_SLACK));
  if (atLeast < limit.maxModelLen) return;
  throw new LineFailure(
    "context_length_exceeded",
    `This model's maximum context length is ${limit.maxModelLen} tokens. However, your ${where} resulted in ${text.length} characters, ` +
      `at least ${atLeast} tokens. Please reduce the length of the ${where}.`,
  );
}
