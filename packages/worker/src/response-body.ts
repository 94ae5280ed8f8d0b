// The OpenAI response bodies a batch output line carries: chat.completion for
// /v1/chat/completions, text_completion for /v1/completions, both with usage.
//
// Ids are `chatcmpl-` / `cmpl-` and 24 hex digits: 16 random per process (drawn again
// every 2^32 ids) and an 8-digit counter, so a line costs no random bytes and ids stay
// unique across workers (64 random bits a prefix) and within one.
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

let idPrefix = "";
let idCounter = 0x1_0000_0000;

/** The next 24 hex digits of a response id. */
export function nextResponseIdHex(): string {
  if (idCounter >= 0x1_0000_0000) {
    idPrefix = randomBytes(8).toString("hex");
    idCounter = 0;
  }
  return idPrefix + (idCounter++).toString(16).padStart(8, "0");
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
      id: c.id ?? `chatcmpl-${nextResponseIdHex()}`,
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
    id: c.id ?? `cmpl-${nextResponseIdHex()}`,
    object: "text_completion",
    created,
    model: c.model,
    choices: [{ index: 0, text: c.text, logprobs: null, finish_reason: c.finishReason }],
    usage,
  };
}

/**
 * buildResponseBody's body as JSON text, written directly (the same text JSON.stringify
 * gives for it, key order included): the per-line path builds no object tree for it.
 */
export function responseBodyJson(c: Completion): string {
  const created = c.created ?? Math.floor(Date.now() / 1000);
  const usage =
    `"usage":{"prompt_tokens":${c.promptTokens},"completion_tokens":${c.completionTokens},` +
    `"total_tokens":${c.promptTokens + c.completionTokens}}}`;
  if (c.kind === "chat") {
    const id = c.id ?? `chatcmpl-${nextResponseIdHex()}`;
    return (
      `{"id":${JSON.stringify(id)},"object":"chat.completion","created":${created},"model":${JSON.stringify(c.model)},` +
      `"choices":[{"index":0,"message":{"role":"assistant","content":${JSON.stringify(c.text)},"refusal":null},` +
      `"logprobs":null,"finish_reason":"${c.finishReason}"}],${usage}`
    );
  }
  const id = c.id ?? `cmpl-${nextResponseIdHex()}`;
  return (
    `{"id":${JSON.stringify(id)},"object":"text_completion","created":${created},"model":${JSON.stringify(c.model)},` +
    `"choices":[{"index":0,"text":${JSON.stringify(c.text)},"logprobs":null,"finish_reason":"${c.finishReason}"}],${usage}`
  );
}
