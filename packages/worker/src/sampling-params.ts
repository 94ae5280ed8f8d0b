// OpenAI sampling parameters -> one engine GenerateRequest.
import type { ParsedRequest } from "@batchgen/core";
import type { GenerateRequest } from "./engine-driver.js";
import { LineFailure } from "./line-failure.js";

export interface SamplingContext {
  /** Engine request id (unique while the request lives in the engine). */
  id: string;
  promptTokens: number[];
  maxModelLen: number;
  /** Single-token stop strings (see stop-strings.ts). */
  stopTokenIds: number[];
}

/**
 * max_completion_tokens ?? max_tokens, or else everything the context has left after the
 * prompt (OpenAI's default). A prompt that fills the context, or a prompt plus the
 * requested completion that overflows it, is refused as OpenAI refuses it:
 * context_length_exceeded. seed null leaves the seed to the engine (derived from the
 * request id); top_k 0 and min_p 0 are off. ignore_eos (extension) keeps the engine
 * generating past the model's end-of-sequence tokens.
 */
export function toGenerateRequest(request: ParsedRequest, ctx: SamplingContext): GenerateRequest {
  const promptLen = ctx.promptTokens.length;
  const where = request.kind === "chat" ? "messages" : "prompt";
  if (promptLen === 0) throw new LineFailure("invalid_request", `The ${where} rendered to zero tokens.`);
  if (promptLen >= ctx.maxModelLen) {
    throw new LineFailure(
      "context_length_exceeded",
      `This model's maximum context length is ${ctx.maxModelLen} tokens. However, your ${where} resulted in ${promptLen} tokens. Please reduce the length of the ${where}.`,
    );
  }
  const maxTokens = request.maxTokens ?? ctx.maxModelLen - promptLen;
  if (promptLen + maxTokens > ctx.maxModelLen) {
    throw new LineFailure(
      "context_length_exceeded",
      `This model's maximum context length is ${ctx.maxModelLen} tokens. However, you requested ${promptLen + maxTokens} tokens (${promptLen} in the ${where}, ${maxTokens} in the completion). Please reduce the length of the ${where} or completion.`,
    );
  }
  const generate: GenerateRequest = {
    id: ctx.id,
    prompt: ctx.promptTokens,
    maxTokens,
    temperature: request.temperature,
    topP: request.topP,
    topK: request.topK,
    minP: request.minP,
    priority: request.priority,
  };
  if (request.seed !== null) generate.seed = request.seed;
  if (request.ignoreEos) generate.ignoreEos = true;
  if (ctx.stopTokenIds.length > 0) generate.stopTokenIds = [...ctx.stopTokenIds];
  return generate;
}
