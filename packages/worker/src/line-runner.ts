// One leased line, start to finish: parse the body, build the prompt (off the event
// loop: prompt-source.ts), run the engine, cut at stop strings, build the OpenAI response body.
import { parseRequestBody, type BatchEndpoint, type ParsedRequest } from "@batchgen/core";
import type { EngineDriver } from "./engine-driver.js";
import { LineFailure } from "./line-failure.js";
import { InlinePrompts, type PromptSource } from "./prompt-source.js";
import { responseBodyJson } from "./response-body.js";
import { toGenerateRequest } from "./sampling-params.js";
import { applyStopStrings, planStopStrings } from "./stop-strings.js";
import type { WorkerTokenizer } from "./worker-tokenizer.js";

export type LineOutcome =
  | { kind: "response"; bodyJson: string; promptTokens: number; completionTokens: number; engineMs: number }
  | { kind: "error"; code: string; message: string; promptTokens: number }
  | { kind: "aborted" };

export interface LineRunnerOptions {
  engine: EngineDriver;
  tokenizer: WorkerTokenizer;
  /** Where prompt token ids are made (worker threads); default the main thread, a line per turn. */
  prompts?: PromptSource;
  /** The model name written into response bodies. */
  modelName: string;
}

export class LineRunner {
  /** Lines whose prompt is being made (not in the engine yet), and those of them aborted meanwhile. */
  private readonly preparing = new Set<string>();
  private readonly abortedEarly = new Set<string>();

  private readonly prompts: PromptSource;

  constructor(private readonly opts: LineRunnerOptions) {
    const { tokenizer, engine } = opts;
    const limit = tokenizer.maxTokenChars ? { maxModelLen: engine.model.maxModelLen, maxTokenChars: tokenizer.maxTokenChars } : undefined;
    this.prompts = opts.prompts ?? new InlinePrompts(tokenizer, limit);
  }

  /** Stop a line: in the engine, or before it gets there. Throws what engine.abort throws. */
  abort(engineId: string): void {
    if (this.preparing.has(engineId)) this.abortedEarly.add(engineId);
    else this.opts.engine.abort(engineId);
  }

  /** Never rejects: every failure of the line becomes an "error" outcome. */
  async run(engineId: string, endpoint: string, bodyJson: string): Promise<LineOutcome> {
    let promptLen = 0;
    try {
      const request = parseRequest(endpoint, bodyJson);
      const { engine, tokenizer } = this.opts;
      this.preparing.add(engineId);
      let prompt: number[];
      try {
        prompt = await this.prompts.tokens(request);
      } finally {
        this.preparing.delete(engineId);
      }
      if (this.abortedEarly.delete(engineId)) return { kind: "aborted" };
      promptLen = prompt.length;
      const stops = planStopStrings(request.stop, tokenizer);
      const generate = toGenerateRequest(request, {
        id: engineId,
        promptTokens: prompt,
        maxModelLen: engine.model.maxModelLen,
        stopTokenIds: stops.stopTokenIds,
      });
      const result = await engine.generate(generate);
      if (result.finishReason === "abort") return { kind: "aborted" };
      if (result.finishReason === "error") {
        return { kind: "error", code: "engine_error", message: result.error ?? "The engine failed on this request.", promptTokens: promptLen };
      }
      const decode = (ids: number[]) => tokenizer.decode(ids, { skipSpecialTokens: true });
      const cut = applyStopStrings(result.tokens, stops.textStops, decode);
      const finishReason = cut.stopped || result.finishReason === "stop" ? "stop" : "length";
      const completionTokens = cut.stopped ? cut.tokenCount : result.completionTokens;
      const responseJson = responseBodyJson({
        kind: request.kind,
        model: this.opts.modelName,
        text: cut.text,
        finishReason,
        promptTokens: result.promptTokens,
        completionTokens,
      });
      return {
        kind: "response",
        bodyJson: responseJson,
        promptTokens: result.promptTokens,
        completionTokens,
        engineMs: result.timings.totalMs,
      };
    } catch (err) {
      if (err instanceof LineFailure) return { kind: "error", code: err.code, message: err.message, promptTokens: promptLen };
      const message = err instanceof Error ? err.message : String(err);
      // The engine rejects bad input (InvalidArgumentError) per request; the line fails, the worker goes on.
      const code = isInvalidArgument(err) ? "invalid_request" : "engine_error";
      return { kind: "error", code, message, promptTokens: promptLen };
    }
  }
}

function parseRequest(endpoint: string, bodyJson: string): ParsedRequest {
  let body: unknown;
  try {
    body = JSON.parse(bodyJson);
  } catch {
    throw new LineFailure("invalid_request", "The request body is not valid JSON.");
  }
  try {
    return parseRequestBody(endpoint as BatchEndpoint, body);
  } catch (err) {
    throw new LineFailure("invalid_request", err instanceof Error ? err.message : String(err));
  }
}

function isInvalidArgument(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === "invalid_argument";
}
