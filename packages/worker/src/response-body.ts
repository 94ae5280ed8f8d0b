// The OpenAI response bodies a batch output line carries: chat.completion for
// /v1/chat/completions, text_completion for /v1/completions, both with usage.
import { randomBytes } from "node:crypto";

export type FinishReason = "stop" | "length";

export interface Completion {
  kind: "chat" | "completion";
  model: string;
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  /** Defaults: a fresh id with OpenAI's prefix, the current time. */
  id?: string;
  created?: number;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface ChatCompletionBody {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: Array<{
    index: 0;
    message: { role: "assistant"; content: string; refusal: null };
    logprobs: null;
    finish_reason: FinishReason;
  }>;
  usage: Usage;
}

export interface TextCompletionBody {
  id: string;
  object: "text_completion";
  created: number;
  model: string;
  choices: Array<{ index: 0; text: string; logprobs: null; finish_reason: FinishReason }>;
  usage: Usage;
}

export function buildResponseBody(c: Completion): ChatCompletionBody | TextCompletionBody {
  const created = c.created ?? Math.floor(Date.now() / 1000);
  const usage: Usage = {
    prompt_tokens: c.promptTokens,
    completion_tokens: c.completionTokens,
    total_tokens: c.promptTokens + c.completionTokens,
  };
  if (c.kind === "chat") {
    return {
      id: c.id ?? `chatcmpl-${randomBytes(12).toString("hex")}`,
      object: "chat.completion",
      created,
      model: c.model,
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: c.text, refusal: null },
          logprobs: null,
          finish_reason: c.finishReason,
        },
      ],
      usage,
    };
  }
  return {
    id: c.id ?? `cmpl-${randomBytes(12).toString("hex")}`,
    object: "text_completion",
    created,
    model: c.model,
    choices: [{ index: 0, text: c.text, logprobs: null, finish_reason: c.finishReason }],
    usage,
  };
}
