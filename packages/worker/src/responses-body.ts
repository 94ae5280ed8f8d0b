// The body of a /v1/responses output line: OpenAI's `response` object with one
// assistant message of one output_text part. A line cut at max_output_tokens (or
// the context) is "incomplete" with reason max_output_tokens, as the Responses API
// reports it; the request's settings are echoed as the API echoes them.
import type { ParsedRequest, ResponseFormat } from "@batchgen/core";
import type { FinishReason } from "./response-body.js";
import { nextResponseIdHex } from "./response-body.js";

export interface ResponseOutput {
  model: string;
  text: string;
  finishReason: FinishReason;
  inputTokens: number;
  cachedTokens: number;
  outputTokens: number;
  /** Defaults: fresh ids, the current time. */
  id?: string;
  createdAt?: number;
}

function formatEcho(f: ResponseFormat): Record<string, unknown> {
  if (f.type === "json_schema") return { type: "json_schema", name: f.name, schema: f.schema, strict: f.strict };
  return { type: f.type };
}

export function buildResponseObject(out: ResponseOutput, request: ParsedRequest): Record<string, unknown> {
  const hex = nextResponseIdHex();
  const complete = out.finishReason === "stop";
  const createdAt = out.createdAt ?? Math.floor(Date.now() / 1000);
  return {
    id: out.id ?? `resp_${hex}`,
    object: "response",
    created_at: createdAt,
    status: complete ? "completed" : "incomplete",
    completed_at: complete ? Math.max(createdAt, Math.floor(Date.now() / 1000)) : null,
    background: false,
    error: null,
    incomplete_details: complete ? null : { reason: "max_output_tokens" },
    instructions: request.instructions ?? null,
    max_output_tokens: request.maxTokens,
    model: out.model,
    output: [
      {
        id: `msg_${hex}`,
        type: "message",
        status: complete ? "completed" : "incomplete",
        role: "assistant",
        content: [{ type: "output_text", text: out.text, annotations: [], logprobs: [] }],
      },
    ],
    parallel_tool_calls: true,
    previous_response_id: null,
    reasoning: { effort: null, summary: null },
    store: false,
    temperature: request.temperature,
    text: { format: formatEcho(request.responseFormat) },
    tool_choice: "auto",
    tools: [],
    top_p: request.topP,
    truncation: "disabled",
    usage: {
      input_tokens: out.inputTokens,
      input_tokens_details: { cached_tokens: out.cachedTokens, cache_write_tokens: 0 },
      output_tokens: out.outputTokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: out.inputTokens + out.outputTokens,
    },
    user: null,
    metadata: {},
  };
}
