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
  /** Which of the line's n choices (0-based); default 0. */
  choice?: number;
}

/**
 * max_completion_tokens ?? max_tokens, or else everything the context has left after the
 * prompt (OpenAI's default). A prompt that fills the context, or a prompt plus the
 * requested completion that overflows it, is refused as OpenAI refuses it:
 * context_length_exceeded. seed null leaves the seed to the engine (derived from the
 * request id); top_k 0 and min_p 0 are off. ignore_eos (extension) keeps the engine
 * generating past the model's end-of-sequence tokens.
 *
 * n > 1 runs n engine requests with the same prompt: choice i has seed + i when the
 * line gives a seed (else the engine derives one from choice i's own request id),
 * so choice i equals the same line run alone with n = 1 and seed + i. The engine's
 * prefix cache (where enabled) prefills the shared prompt once.
 */
export function toGenerateRequest(request: ParsedRequest, ctx: SamplingContext): GenerateRequest {
  const promptLen = ctx.promptTokens.length;
  const where = request.kind === "completion" ? "prompt" : request.kind === "response" ? "input" : "messages";
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
  const choice = ctx.choice ?? 0;
  if (request.seed !== null) generate.seed = choice === 0 ? request.seed : BigInt(request.seed) + BigInt(choice);
  if (request.presencePenalty !== 0) generate.presencePenalty = request.presencePenalty;
  if (request.frequencyPenalty !== 0) generate.frequencyPenalty = request.frequencyPenalty;
  if (request.repetitionPenalty !== 1) generate.repetitionPenalty = request.repetitionPenalty;
  if (request.logitBias.size > 0) generate.logitBias = request.logitBias;
  if (request.logprobs !== null) generate.logprobs = request.logprobs;
  const format = request.responseFormat;
  if (format.type === "json_object") generate.responseFormat = { type: "json_object" };
  else if (format.type === "json_schema") generate.responseFormat = { type: "json_schema", schema: format.schema };
  if (request.ignoreEos) generate.ignoreEos = true;
  if (ctx.stopTokenIds.length > 0) generate.stopTokenIds = [...ctx.stopTokenIds];
  return generate;
}
