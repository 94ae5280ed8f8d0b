// One parser of OpenAI request bodies, used by the coordinator (validation at ingest)
// and the worker (to run them), so both agree on what a line means.
//
// Unknown fields are ignored (the SDKs add harmless ones such as `user`, `store`,
// `metadata`); fields that would change the output in a way the engine cannot honour
// (tools, audio, echo, best_of > 1, ...) are rejected rather than silently dropped.
import { BatchgenError } from "./errors.js";
import type { BatchEndpoint } from "./openai.js";
import { describeRange, inRange, REQUEST_LIMITS, type NumberRange } from "./request-limits.js";
import { parseEmbeddingOptions, type EmbeddingOptions } from "./embedding-input.js";
import { parseResponseFormat, parseTextFormat, type ResponseFormat } from "./response-format.js";
import { parseResponsesInput } from "./responses-input.js";

export type { ResponseFormat } from "./response-format.js";
export type { EmbeddingInput, EmbeddingOptions } from "./embedding-input.js";

export interface ChatMessage {
  role: string;
  content: string;
}

export interface ParsedRequest {
  endpoint: BatchEndpoint;
  model: string;
  /**
   * chat (/v1/chat/completions), completion (/v1/completions), response
   * (/v1/responses: a conversation like chat, answered with a response object) or
   * embedding (/v1/embeddings: `embedding` says what; the sampling fields keep their defaults).
   */
  kind: "chat" | "completion" | "response" | "embedding";
  /** Chat and response: text content parts joined; role "developer" is read as "system". */
  messages?: ChatMessage[];
  /** Completion given as text. */
  prompt?: string;
  /** Completion given as token ids (OpenAI accepts an array of integers as a prompt). */
  promptTokenIds?: number[];
  /** max_completion_tokens ?? max_tokens ?? null (the worker then runs up to the context). */
  maxTokens: number | null;
  temperature: number;
  topP: number;
  /** 0 = off. */
  topK: number;
  /** 0 = off. */
  minP: number;
  seed: number | null;
  stop: string[];
  /** Extension; higher runs first. */
  priority: number;
  /** Extension (vLLM's `ignore_eos`): generation does not stop at the model's end-of-sequence tokens. */
  ignoreEos: boolean;
  /** Choices per line (1..128); choice i runs with seed + i (see the worker's sampling-params). */
  n: number;
  /**
   * Logprobs: null = off; else alternatives per token. Chat: `logprobs: true` with
   * `top_logprobs` (0..20); completions: `logprobs` (0..20; OpenAI allows 5).
   */
  logprobs: number | null;
  presencePenalty: number;
  frequencyPenalty: number;
  /** Extension (vLLM's `repetition_penalty`): 1 = off. */
  repetitionPenalty: number;
  /** Token id -> bias in [-100, 100]. */
  logitBias: Map<number, number>;
  /** Chat: OpenAI's `response_format`; completions: the same field as an extension; responses: `text.format`. */
  responseFormat: ResponseFormat;
  /** Embeddings: the inputs, dimensions and encoding. */
  embedding?: EmbeddingOptions;
  /** Responses: `instructions` as given (also the first, system, message), echoed in the response object. */
  instructions?: string;
}


export const MAX_STOP_SEQUENCES = 4;
export const CHAT_ROLES = ["system", "developer", "user", "assistant"] as const;

type Body = Record<string, unknown>;

function invalid(message: string, param: string, reason = "invalid_request"): BatchgenError {
  return new BatchgenError("invalid_request", message, { param, reason });
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

function isObject(v: unknown): v is Body {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A field's value, with JSON null read as absent (OpenAI accepts null for optional fields). */
function opt(body: Body, key: string): unknown {
  const v = body[key];
  return v === null ? undefined : v;
}

/** A numeric field checked against its range (REQUEST_LIMITS); `dflt` when absent. */
function ranged(body: Body, key: string, range: NumberRange, dflt: number): number;
function ranged(body: Body, key: string, range: NumberRange): number | undefined;
function ranged(body: Body, key: string, range: NumberRange, dflt?: number): number | undefined {
  const v = opt(body, key);
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isFinite(v) || (range.integer && !Number.isSafeInteger(v))) {
    const got = typeof v === "number" ? String(v) : typeName(v);
    throw invalid(`'${key}' must be ${range.integer ? "an integer" : "a number"}, got ${got}.`, key);
  }
  if (!inRange(v, range)) throw invalid(`'${key}' must be ${describeRange(range)}, got ${v}.`, key);
  return v;
}

const UNSUPPORTED_FIELDS = ["suffix", "tools", "functions", "tool_choice", "function_call", "audio", "prediction"];

function rejectUnsupported(body: Body): void {
  const bestOf = opt(body, "best_of");
  if (bestOf !== undefined && bestOf !== 1) throw invalid("'best_of' is not supported.", "best_of");
  if (opt(body, "stream") === true) throw invalid("'stream' is not supported in a batch.", "stream");
  if (opt(body, "echo") === true) throw invalid("'echo' is not supported.", "echo");
  for (const key of UNSUPPORTED_FIELDS) {
    if (opt(body, key) !== undefined) throw invalid(`'${key}' is not supported.`, key);
  }
}

function parseLogprobs(endpoint: BatchEndpoint, body: Body): number | null {
  const lp = opt(body, "logprobs");
  if (endpoint === "/v1/completions") {
    if (lp === undefined || lp === false) return null;
    return ranged(body, "logprobs", REQUEST_LIMITS.top_logprobs)!;
  }
  if (lp !== undefined && typeof lp !== "boolean") throw invalid(`'logprobs' must be true or false, got ${typeName(lp)}.`, "logprobs");
  const top = ranged(body, "top_logprobs", REQUEST_LIMITS.top_logprobs);
  if (top !== undefined && lp !== true) throw invalid("'top_logprobs' needs 'logprobs' set to true.", "top_logprobs");
  return lp === true ? (top ?? 0) : null;
}

function parseLogitBias(body: Body): Map<number, number> {
  const v = opt(body, "logit_bias");
  const out = new Map<number, number>();
  if (v === undefined) return out;
  if (!isObject(v)) throw invalid(`'logit_bias' must be an object of token id -> bias, got ${typeName(v)}.`, "logit_bias");
  for (const [key, bias] of Object.entries(v)) {
    if (!/^\d+$/.test(key) || !Number.isSafeInteger(Number(key))) {
      throw invalid(`'logit_bias' keys must be token ids, got ${JSON.stringify(key)}.`, `logit_bias.${key}`);
    }
    if (typeof bias !== "number" || !(bias >= -100 && bias <= 100)) {
      throw invalid(`'logit_bias' values must be numbers from -100 to 100, got ${JSON.stringify(bias)}.`, `logit_bias.${key}`);
    }
    out.set(Number(key), bias);
  }
  return out;
}

function parseStop(body: Body): string[] {
  const v = opt(body, "stop");
  if (v === undefined) return [];
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list)) throw invalid(`'stop' must be a string or an array of strings, got ${typeName(v)}.`, "stop");
  if (list.length > MAX_STOP_SEQUENCES) {
    throw invalid(`'stop' takes at most ${MAX_STOP_SEQUENCES} sequences, got ${list.length}.`, "stop");
  }
  return list.map((s, i) => {
    if (typeof s !== "string" || s.length === 0) throw invalid("each 'stop' sequence must be a non-empty string.", `stop[${i}]`);
    return s;
  });
}

function parseContent(content: unknown, param: string): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) {
    throw invalid(`'${param}' must be a string or an array of text parts, got ${typeName(content)}.`, param);
  }
  return content
    .map((part, j) => {
      if (!isObject(part)) throw invalid(`'${param}[${j}]' must be an object.`, `${param}[${j}]`);
      if (part.type !== "text") {
        throw invalid(`content part type '${String(part.type)}' is not supported; only 'text'.`, `${param}[${j}].type`);
      }
      if (typeof part.text !== "string") {
        throw invalid(`'${param}[${j}].text' must be a string.`, `${param}[${j}].text`);
      }
      return part.text;
    })
    .join("");
}

function parseMessages(body: Body): ChatMessage[] {
  const v = opt(body, "messages");
  if (v === undefined) throw invalid("Missing required parameter: 'messages'.", "messages", "missing_required_parameter");
  if (!Array.isArray(v)) throw invalid(`'messages' must be an array, got ${typeName(v)}.`, "messages");
  if (v.length === 0) throw invalid("'messages' must contain at least one message.", "messages");
  return v.map((m, i) => {
    const param = `messages[${i}]`;
    if (!isObject(m)) throw invalid(`'${param}' must be an object.`, param);
    if (m.role === undefined) throw invalid(`Missing required parameter: '${param}.role'.`, `${param}.role`, "missing_required_parameter");
    if (typeof m.role !== "string" || !(CHAT_ROLES as readonly string[]).includes(m.role)) {
      throw invalid(`'${param}.role' must be one of ${CHAT_ROLES.join(", ")}; got ${JSON.stringify(m.role)}.`, `${param}.role`);
    }
    if (m.content === undefined || m.content === null) {
      throw invalid(`Missing required parameter: '${param}.content'.`, `${param}.content`, "missing_required_parameter");
    }
    if (m.tool_calls !== undefined && m.tool_calls !== null) throw invalid("'tool_calls' is not supported.", `${param}.tool_calls`);
    const role = m.role === "developer" ? "system" : m.role;
    return { role, content: parseContent(m.content, `${param}.content`) };
  });
}

function isTokenIds(v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 && v.every((t) => typeof t === "number");
}

function parsePrompt(body: Body): { prompt?: string; promptTokenIds?: number[] } {
  let v = opt(body, "prompt");
  if (v === undefined) throw invalid("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter");
  // A one-element list is one prompt; more would be several completions per line.
  if (Array.isArray(v) && v.length === 1 && (typeof v[0] === "string" || Array.isArray(v[0]))) v = v[0];
  if (typeof v === "string") return { prompt: v };
  if (isTokenIds(v)) {
    v.forEach((t, i) => {
      if (!inRange(t, REQUEST_LIMITS.prompt_token_id)) {
        throw invalid(`token ids in 'prompt' must be ${describeRange(REQUEST_LIMITS.prompt_token_id)}.`, `prompt[${i}]`);
      }
    });
    return { promptTokenIds: v };
  }
  if (Array.isArray(v) && v.length > 1) {
    throw invalid("'prompt' must be a single prompt: one request line gives one completion.", "prompt");
  }
  throw invalid(`'prompt' must be a string or an array of token ids, got ${typeName(v)}.`, "prompt");
}

const RESPONSES_UNSUPPORTED = ["previous_response_id", "conversation", "prompt", "reasoning", "max_tool_calls", "top_logprobs", "logprobs", "n", "response_format"];

/** What /v1/responses lines cannot ask for (beyond what rejectUnsupported refuses everywhere). */
function rejectUnsupportedResponses(body: Body): void {
  if (opt(body, "background") === true) throw invalid("'background' is not supported in a batch.", "background");
  for (const key of RESPONSES_UNSUPPORTED) {
    if (opt(body, key) !== undefined) throw invalid(`'${key}' is not supported on /v1/responses lines.`, key);
  }
  const text = opt(body, "text");
  if (text !== undefined && !isObject(text)) throw invalid(`'text' must be an object, got ${typeName(text)}.`, "text");
}

/** Sampling fields at their defaults: what an embeddings line carries besides `embedding`. */
function embeddingRequest(body: Body, model: string): ParsedRequest {
  return {
    endpoint: "/v1/embeddings", model, kind: "embedding", maxTokens: null, temperature: 1, topP: 1, topK: 0, minP: 0, seed: null,
    stop: [], priority: ranged(body, "priority", REQUEST_LIMITS.priority, 0), ignoreEos: false, n: 1, logprobs: null,
    presencePenalty: 0, frequencyPenalty: 0, repetitionPenalty: 1, logitBias: new Map(), responseFormat: { type: "text" },
    embedding: parseEmbeddingOptions(body),
  };
}

/** Parse and check one request body; throws BatchgenError("invalid_request", ..., {param}). */
export function parseRequestBody(endpoint: BatchEndpoint, body: unknown): ParsedRequest {
  if (!isObject(body)) throw invalid(`'body' must be a JSON object, got ${typeName(body)}.`, "body");
  const model = opt(body, "model");
  if (model === undefined) throw invalid("Missing required parameter: 'model'.", "model", "missing_required_parameter");
  if (typeof model !== "string" || model.trim() === "") throw invalid("'model' must be a non-empty string.", "model");
  if (endpoint === "/v1/embeddings") return embeddingRequest(body, model);
  rejectUnsupported(body);
  if (endpoint === "/v1/responses") rejectUnsupportedResponses(body);

  const maxCompletion = ranged(body, "max_completion_tokens", REQUEST_LIMITS.max_tokens);
  const maxTokens = ranged(body, "max_tokens", REQUEST_LIMITS.max_tokens);
  const topK = ranged(body, "top_k", REQUEST_LIMITS.top_k);
  const seed = opt(body, "seed");
  if (seed !== undefined && (typeof seed !== "number" || !Number.isSafeInteger(seed))) {
    throw invalid(`'seed' must be an integer, got ${typeName(seed)}.`, "seed");
  }
  const priority = ranged(body, "priority", REQUEST_LIMITS.priority, 0);
  const ignoreEos = opt(body, "ignore_eos");
  if (ignoreEos !== undefined && typeof ignoreEos !== "boolean") {
    throw invalid(`'ignore_eos' must be true or false, got ${typeName(ignoreEos)}.`, "ignore_eos");
  }

  const maxOutput = endpoint === "/v1/responses" ? ranged(body, "max_output_tokens", REQUEST_LIMITS.max_tokens) : undefined;
  const common = {
    endpoint,
    model,
    maxTokens: maxOutput ?? maxCompletion ?? maxTokens ?? null,
    temperature: ranged(body, "temperature", REQUEST_LIMITS.temperature, 1),
    topP: ranged(body, "top_p", REQUEST_LIMITS.top_p, 1),
    // vLLM's -1 means "off" as 0 does here.
    topK: topK === undefined || topK === -1 ? 0 : topK,
    minP: ranged(body, "min_p", REQUEST_LIMITS.min_p, 0),
    seed: (seed as number | undefined) ?? null,
    stop: parseStop(body),
    priority,
    ignoreEos: ignoreEos === true,
    n: ranged(body, "n", REQUEST_LIMITS.n, 1),
    logprobs: parseLogprobs(endpoint, body),
    presencePenalty: ranged(body, "presence_penalty", REQUEST_LIMITS.presence_penalty, 0),
    frequencyPenalty: ranged(body, "frequency_penalty", REQUEST_LIMITS.frequency_penalty, 0),
    repetitionPenalty: ranged(body, "repetition_penalty", REQUEST_LIMITS.repetition_penalty, 1),
    logitBias: parseLogitBias(body),
    responseFormat:
      endpoint === "/v1/responses"
        ? parseTextFormat((opt(body, "text") as Body | undefined)?.format)
        : parseResponseFormat(opt(body, "response_format")),
  };
  if (common.responseFormat.type !== "text" && common.ignoreEos) {
    throw invalid("'ignore_eos' cannot be combined with a JSON 'response_format': the line ends on an end-of-sequence token.", "ignore_eos");
  }
  if (endpoint === "/v1/chat/completions") {
    return { ...common, kind: "chat", messages: parseMessages(body) };
  }
  if (endpoint === "/v1/completions") {
    return { ...common, kind: "completion", ...parsePrompt(body) };
  }
  if (endpoint === "/v1/responses") {
    const instructions = opt(body, "instructions");
    const response: ParsedRequest = { ...common, kind: "response", messages: parseResponsesInput(body) };
    if (typeof instructions === "string") response.instructions = instructions;
    return response;
  }
  throw invalid(`unsupported endpoint ${JSON.stringify(endpoint)}.`, "url", "invalid_url");
}
