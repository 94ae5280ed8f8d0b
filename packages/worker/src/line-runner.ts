// One leased line, start to finish: parse the body, build the prompt, run the engine,
// cut at stop strings, build the OpenAI response body.
import { parseRequestBody, type BatchEndpoint, type ParsedRequest } from "@batchgen/core";
import type { EngineDriver } from "./engine-driver.js";
import { LineFailure } from "./line-failure.js";
import { promptTokens } from "./prompt-tokens.js";
import { responseBodyJson } from "./response-body.js";
import { toGenerateRequest } from "./sampling-params.js";
import { applyStopStrings, planStopStrings } from "./stop-strings.js";
import type { WorkerTokenizer } from "./worker-tokenizer.js";

export type LineOutcome =
  | { kind: "response"; bodyJson: string; promptTokens: number; cachedTokens: number; completionTokens: number; engineMs: number }
  | { kind: "error"; code: string; message: string; promptTokens: number }
  | { kind: "aborted" };

export interface LineRunnerOptions {
  engine: EngineDriver;
  tokenizer: WorkerTokenizer;
  /** The model name written into response bodies. */
  modelName: string;
}

/** A line parsed and tokenized, ready for the engine (or already failed). */
export type PreparedLine =
  | { ok: true; request: ParsedRequest; prompt: number[]; stops: ReturnType<typeof planStopStrings> }
  | { ok: false; outcome: LineOutcome };

export class LineRunner {
  constructor(private readonly opts: LineRunnerOptions) {}

  /** Never rejects: every failure of the line becomes an "error" outcome. */
  run(engineId: string, endpoint: string, bodyJson: string): Promise<LineOutcome> {
    return this.execute(engineId, this.prepare(endpoint, bodyJson));
  }

  /** Parses the body and builds the prompt's tokens; never throws. */
  prepare(endpoint: string, bodyJson: string): PreparedLine {
    let promptLen = 0;
    try {
      const request = parseRequest(endpoint, bodyJson);
      const prompt = promptTokens(request, this.opts.tokenizer);
      promptLen = prompt.length;
      return { ok: true, request, prompt, stops: planStopStrings(request.stop, this.opts.tokenizer) };
    } catch (err) {
      return { ok: false, outcome: failure(err, promptLen) };
    }
  }

  /** Runs a prepared line through the engine. Never rejects. */
  async execute(engineId: string, line: PreparedLine): Promise<LineOutcome> {
    if (!line.ok) return line.outcome;
    const { request, prompt, stops } = line;
    try {
      const { engine, tokenizer } = this.opts;
      const generate = toGenerateRequest(request, {
        id: engineId,
        promptTokens: prompt,
        maxModelLen: engine.model.maxModelLen,
        stopTokenIds: stops.stopTokenIds,
      });
      const result = await engine.generate(generate);
      if (result.finishReason === "abort") return { kind: "aborted" };
      if (result.finishReason === "error") {
        return { kind: "error", code: "engine_error", message: result.error ?? "The engine failed on this request.", promptTokens: prompt.length };
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
        cachedTokens: result.cachedTokens,
        completionTokens,
        engineMs: result.timings.totalMs,
      };
    } catch (err) {
      return failure(err, prompt.length);
    }
  }
}

/**
 * The order to submit a lease's lines in: by prompt tokens, so that lines sharing a
 * prefix reach the engine together and share its cached blocks while they are warm
 * (failed lines first; ties keep the lease's order). Returns indexes into `lines`.
 */
export function promptOrder(lines: readonly PreparedLine[]): number[] {
  const order = lines.map((_, i) => i);
  return order.sort((a, b) => comparePrepared(lines[a]!, lines[b]!) || a - b);
}

function comparePrepared(a: PreparedLine, b: PreparedLine): number {
  if (!a.ok || !b.ok) return (a.ok ? 1 : 0) - (b.ok ? 1 : 0);
  const x = a.prompt, y = b.prompt;
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

function failure(err: unknown, promptTokens: number): LineOutcome {
  if (err instanceof LineFailure) return { kind: "error", code: err.code, message: err.message, promptTokens };
  const message = err instanceof Error ? err.message : String(err);
  // The engine rejects bad input (InvalidArgumentError) per request; the line fails, the worker goes on.
  const code = isInvalidArgument(err) ? "invalid_request" : "engine_error";
  return { kind: "error", code, message, promptTokens };
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
