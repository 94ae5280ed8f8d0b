// A parsed request -> the prompt's token ids, as Hugging Face transformers would make
// them: a chat is rendered with the model's chat template (generation prompt added)
// and tokenized without adding special tokens (the template writes <bos> itself); a
// completion prompt is tokenized with the special tokens the model's tokenizer adds
// (BOS where tokenizer_config.json's add_bos_token says so). Token-id prompts pass as is.
import type { ParsedRequest } from "@batchgen/core";
import { LineFailure } from "./line-failure.js";
import type { WorkerTokenizer } from "./worker-tokenizer.js";

export function promptTokens(request: ParsedRequest, tokenizer: WorkerTokenizer): number[] {
  if (request.kind === "chat") {
    let text: string;
    try {
      text = tokenizer.applyChatTemplate(request.messages ?? [], { addGenerationPrompt: true });
    } catch (err) {
      // Templates raise for conversations they do not accept (e.g. a system role, or
      // roles that do not alternate): that is the request's fault, not the worker's.
      const why = err instanceof Error ? err.message : String(err);
      throw new LineFailure("invalid_request", `The model's chat template rejected the messages: ${why}`);
    }
    return tokenizer.encode(text, { addSpecialTokens: false });
  }
  if (request.promptTokenIds) return [...request.promptTokenIds];
  return tokenizer.encode(request.prompt ?? "", { addSpecialTokens: true });
}
