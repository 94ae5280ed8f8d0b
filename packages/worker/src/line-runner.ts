// One leased line, start to finish: parse the body, build the prompt (off the event
// loop: prompt-source.ts), run the engine, cut at stop strings, build the OpenAI response body.
import { parseRequestBody, type BatchEndpoint, type ParsedRequest } from "@batchgen/core";
import type { EmbeddingModel } from "./embedding-model.js";
import { embeddingsBodyJson, finishVector } from "./embeddings-body.js";
import type { EngineDriver, GenerateRequest, GenerateResult } from "./engine-driver.js";
import { LineFailure } from "./line-failure.js";
import { InlinePrompts, type PromptSource } from "./prompt-source.js";
import { responseBodyJson, type Choice, type Completion, type TokenLogprobInfo } from "./response-body.js";
import { buildResponseObject } from "./responses-body.js";
import { toGenerateRequest } from "./sampling-params.js";
import { applyStopStrings, planStopStrings } from "./stop-strings.js";
import type { WorkerTokenizer } from "./worker-tokenizer.js";

export type LineOutcome =
  | {
      kind: "response"; bodyJson: string; promptTokens: number; cachedTokens: number; completionTokens: number; engineMs: number;
      /** The LoRA adapter that answered (absent: the base model). */
      lora?: string;
    }
  | { kind: "error"; code: string; message: string; promptTokens: number }
  | { kind: "aborted" };

export interface LineRunnerOptions {
  engine: EngineDriver;
  tokenizer: WorkerTokenizer;
  /** Where prompt token ids are made (worker threads); default the main thread, a line per turn. */
  prompts?: PromptSource;
  /** The model name written into response bodies. */
  modelName: string;
  /** How embeddings lines pool and normalize (embedding-model.ts); default: mean, normalized. */
  embedding?: EmbeddingModel;
}

const DEFAULT_EMBEDDING: EmbeddingModel = { ok: true, pooling: "mean", normalize: true, source: "default" };

/** A line parsed and tokenized, ready for the engine (or already failed). */
export type PreparedLine =
  | { ok: true; request: ParsedRequest; prompt: number[]; stops: ReturnType<typeof planStopStrings>; inputs?: number[][] }
  | { ok: false; outcome: LineOutcome };

export class LineRunner {
  /** Engine ids of the extra choices of running n > 1 lines, by the line's engine id. */
  readonly #choiceIds = new Map<string, string[]>();

  /**
   * Lines prepared or being prepared but not yet in the engine (from prepare() until
   * execute() starts), and those of them aborted meanwhile.
   */
  private readonly preparing = new Set<string>();
  private readonly abortedEarly = new Set<string>();

  private readonly prompts: PromptSource;

  constructor(private readonly opts: LineRunnerOptions) {
    const { tokenizer, engine } = opts;
    const limit = tokenizer.maxTokenChars ? { maxModelLen: engine.model.maxModelLen, maxTokenChars: tokenizer.maxTokenChars } : undefined;
    this.prompts = opts.prompts ?? new InlinePrompts(tokenizer, limit);
  }

  /**
   * Stops a line: before it gets to the engine (prepared or its prompt still being made),
   * or in the engine, every choice of it. Throws like EngineDriver.abort for choice 0.
   */
  abort(engineId: string): void {
    if (this.preparing.has(engineId)) {
      this.abortedEarly.add(engineId);
      return;
    }
    for (const id of this.#choiceIds.get(engineId) ?? []) {
      try {
        this.opts.engine.abort(id);
      } catch {
        // That choice finished already.
      }
    }
    this.opts.engine.abort(engineId);
  }

  /** Never rejects: every failure of the line becomes an "error" outcome. */
  async run(engineId: string, endpoint: string, bodyJson: string): Promise<LineOutcome> {
    return this.execute(engineId, await this.prepare(engineId, endpoint, bodyJson));
  }

  /**
   * Parses the body and builds the prompt's tokens (through the prompt source); never
   * rejects. The line counts as preparing, so abort() reaches it, until execute() takes it.
   */
  async prepare(engineId: string, endpoint: string, bodyJson: string): Promise<PreparedLine> {
    let promptLen = 0;
    this.preparing.add(engineId);
    try {
      const request = parseRequest(endpoint, bodyJson);
      if (request.embedding) {
        const inputs = await this.embeddingInputs(request);
        promptLen = inputs.reduce((sum, p) => sum + p.length, 0);
        return { ok: true, request, prompt: inputs[0]!, stops: { stopTokenIds: [], textStops: [] }, inputs };
      }
      const prompt = await this.prompts.tokens(request);
      promptLen = prompt.length;
      return { ok: true, request, prompt, stops: planStopStrings(request.stop, this.opts.tokenizer) };
    } catch (err) {
      return { ok: false, outcome: failure(err, promptLen) };
    }
  }

  /** Runs a prepared line through the engine, every choice of it. Never rejects. */
  async execute(engineId: string, line: PreparedLine): Promise<LineOutcome> {
    this.preparing.delete(engineId);
    if (this.abortedEarly.delete(engineId)) return { kind: "aborted" };
    if (!line.ok) return line.outcome;
    if (line.inputs) return this.embed(engineId, line.request, line.inputs);
    const { request, prompt, stops } = line;
    const promptLen = prompt.length;
    try {
      const { engine } = this.opts;
      // A line names the base model or one of the worker's LoRA adapters (as in vLLM).
      const lora = engine.model.loras.includes(request.model) ? request.model : undefined;
      const results = await this.generateAll(engineId, request.n, (id, choice) => ({
        ...toGenerateRequest(request, { id, choice, promptTokens: prompt, maxModelLen: engine.model.maxModelLen, stopTokenIds: stops.stopTokenIds }),
        ...(lora === undefined ? {} : { lora }),
      }));
      if (results === undefined) return { kind: "aborted" };
      const failed = results.find((r) => r.finishReason === "error");
      if (failed) {
        return { kind: "error", code: "engine_error", message: failed.error ?? "The engine failed on this request.", promptTokens: promptLen };
      }
      const choices = results.map((r) => this.choice(r, stops.textStops, request.logprobs !== null));
      const completionTokens = choices.reduce((sum, c) => sum + c.tokens, 0);
      const [first, ...more] = choices;
      const usage = {
        promptTokens: results[0]!.promptTokens,
        // Choices share the prompt: the first choice's cached count is the line's.
        cachedTokens: results[0]!.cachedTokens,
        completionTokens,
        engineMs: Math.max(...results.map((r) => r.timings.totalMs)),
        ...(lora === undefined ? {} : { lora }),
      };
      if (request.kind === "response") {
        const out = { model: lora ?? this.opts.modelName, text: first!.choice.text, finishReason: first!.choice.finishReason };
        const body = buildResponseObject({ ...out, inputTokens: usage.promptTokens, cachedTokens: usage.cachedTokens, outputTokens: completionTokens }, request);
        return { kind: "response", bodyJson: JSON.stringify(body), ...usage };
      }
      const completion: Completion = {
        kind: request.kind === "chat" ? "chat" : "completion",
        // The model that answered: the adapter, or the base.
        model: lora ?? this.opts.modelName,
        text: first!.choice.text,
        finishReason: first!.choice.finishReason,
        promptTokens: results[0]!.promptTokens,
        completionTokens,
      };
      if (first!.choice.logprobs !== undefined) completion.logprobs = first!.choice.logprobs;
      if (more.length > 0) completion.moreChoices = more.map((c) => c.choice);
      return { kind: "response", bodyJson: responseBodyJson(completion), ...usage };
    } catch (err) {
      return failure(err, promptLen);
    }
  }

  /** Each input's token ids (tokenized as completion prompts are), checked against the context. */
  private async embeddingInputs(request: ParsedRequest): Promise<number[][]> {
    const model = this.opts.embedding ?? DEFAULT_EMBEDDING;
    if (!model.ok) throw new LineFailure("invalid_request", `This model cannot serve embeddings: ${model.reason}.`);
    const { maxModelLen } = this.opts.engine.model;
    const inputs = await Promise.all(
      request.embedding!.inputs.map((input) =>
        "tokenIds" in input ? Promise.resolve([...input.tokenIds]) : this.prompts.tokens({ kind: "completion", prompt: input.text }),
      ),
    );
    inputs.forEach((ids, i) => {
      if (ids.length === 0) throw new LineFailure("invalid_request", `input[${i}] tokenized to zero tokens.`);
      if (ids.length > maxModelLen) {
        throw new LineFailure(
          "context_length_exceeded",
          `This model's maximum context length is ${maxModelLen} tokens, however you requested ${ids.length} tokens in input[${i}]. Please reduce your input.`,
        );
      }
    });
    return inputs;
  }

  /** An embeddings line: one prefill-only engine request per input (ids as choices have them), then the list body. */
  private async embed(engineId: string, request: ParsedRequest, inputs: number[][]): Promise<LineOutcome> {
    const promptLen = inputs.reduce((sum, p) => sum + p.length, 0);
    const model = (this.opts.embedding ?? DEFAULT_EMBEDDING) as Extract<EmbeddingModel, { ok: true }>;
    const options = request.embedding!;
    try {
      const results = await this.generateAll(engineId, inputs.length, (id, i) => ({
        id,
        prompt: inputs[i]!,
        pooling: model.pooling,
        priority: request.priority,
      }));
      if (results === undefined) return { kind: "aborted" };
      const failed = results.find((r) => r.finishReason === "error" || r.embedding === undefined);
      if (failed) {
        return { kind: "error", code: "engine_error", message: failed.error ?? "The engine returned no embedding.", promptTokens: promptLen };
      }
      const width = results[0]!.embedding!.length;
      if (options.dimensions !== null && options.dimensions > width) {
        throw new LineFailure("invalid_request", `'dimensions' is ${options.dimensions}, but this model's embeddings have ${width}.`);
      }
      const vectors = results.map((r) => finishVector(r.embedding!, options.dimensions, model.normalize));
      return {
        kind: "response",
        bodyJson: embeddingsBodyJson({ model: this.opts.modelName, vectors, options, promptTokens: promptLen }),
        promptTokens: promptLen,
        cachedTokens: 0,
        completionTokens: 0,
        engineMs: Math.max(...results.map((r) => r.timings.totalMs)),
      };
    } catch (err) {
      return failure(err, promptLen);
    }
  }

  /**
   * Runs a line's `count` engine requests together: the first under the line's engine
   * id, request i under "<id>/i" (so aborting the line reaches them all). Resolves to
   * their results, or undefined when the line was aborted; a rejection aborts the rest
   * and is rethrown.
   */
  private async generateAll(
    engineId: string,
    count: number,
    make: (id: string, i: number) => GenerateRequest,
  ): Promise<GenerateResult[] | undefined> {
    const ids = Array.from({ length: count }, (_, i) => (i === 0 ? engineId : `${engineId}/${i}`));
    if (ids.length > 1) this.#choiceIds.set(engineId, ids.slice(1));
    const settled = await Promise.allSettled(ids.map((id, i) => this.opts.engine.generate(make(id, i)))).finally(() =>
      this.#choiceIds.delete(engineId),
    );
    const rejected = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (rejected) {
      this.abortAll(ids);
      throw rejected.reason;
    }
    const results = settled.map((s) => (s as PromiseFulfilledResult<GenerateResult>).value);
    return results.some((r) => r.finishReason === "abort") ? undefined : results;
  }

  private abortAll(ids: string[]): void {
    for (const id of ids) {
      try {
        this.opts.engine.abort(id);
      } catch {
        // Finished or never submitted.
      }
    }
  }

  private choice(result: GenerateResult, textStops: string[], withLogprobs: boolean): { choice: Choice; tokens: number } {
    const { tokenizer } = this.opts;
    const decode = (ids: number[]) => tokenizer.decode(ids, { skipSpecialTokens: true });
    const cut = applyStopStrings(result.tokens, textStops, decode);
    const finishReason = cut.stopped || result.finishReason === "stop" ? "stop" : "length";
    const tokens = cut.stopped ? cut.tokenCount : result.completionTokens;
    const choice: Choice = { text: cut.text, finishReason };
    if (withLogprobs) choice.logprobs = tokenLogprobs(result, tokens, tokenizer);
    return { choice, tokens };
  }
}

/**
 * The first `count` generated tokens' logprobs with their text and UTF-8 bytes (a
 * token that is a piece of a character shows U+FFFD, as the tokenizer decodes it
 * alone); special tokens (an end-of-sequence that stopped the line) are left out,
 * as they are out of the text.
 */
function tokenLogprobs(result: GenerateResult, count: number, tokenizer: WorkerTokenizer): TokenLogprobInfo[] {
  const lp = result.logprobs ?? [];
  const text = (id: number) => tokenizer.decode([id], { skipSpecialTokens: false });
  const isSpecial = (id: number) => tokenizer.decode([id], { skipSpecialTokens: true }) === "" && text(id) !== "";
  const out: TokenLogprobInfo[] = [];
  for (let i = 0; i < Math.min(count, lp.length); ++i) {
    const id = result.tokens[i]!;
    if (isSpecial(id)) continue;
    const token = text(id);
    out.push({
      token,
      bytes: [...Buffer.from(token, "utf8")],
      logprob: lp[i]!.logprob,
      top: lp[i]!.top.map((a) => {
        const t = text(a.id);
        return { token: t, bytes: [...Buffer.from(t, "utf8")], logprob: a.logprob };
      }),
    });
  }
  return out;
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
