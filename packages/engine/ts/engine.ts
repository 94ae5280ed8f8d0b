// The engine as TypeScript sees it: load a model, generate, abort, stats, close.
// Requests go to the native step thread; each step's finished results come back
// in one callback on the event loop and resolve their promises.
import { randomUUID } from "node:crypto";

import type {
  Device,
  EngineLoadOptions,
  EngineStats,
  GenerateRequest,
  GenerateResult,
  ModelInfo,
} from "./engine-types.js";
import { EngineError, InvalidArgumentError, NotFoundError } from "./errors.js";
import {
  awaitNative,
  callNative,
  nativeLoad,
  toEngineError,
  type NativeEngine,
  type NativeLoadOptions,
  type NativeRequest,
  type NativeResult,
} from "./native.js";

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

interface Pending {
  resolve: (result: GenerateResult) => void;
  done: Promise<GenerateResult>;
}

export class Engine {
  readonly model: ModelInfo;
  readonly #native: NativeEngine;
  readonly #pending: Map<string, Pending>;
  #closing: Promise<void> | undefined;

  private constructor(native: NativeEngine, pending: Map<string, Pending>) {
    this.#native = native;
    this.#pending = pending;
    this.model = callNative(() => native.modelInfo());
  }

  /** Loads the model off the event loop. Rejects with ModelLoadError, UnsupportedError, ... */
  static async load(options: EngineLoadOptions): Promise<Engine> {
    const native = loadOptions(options);
    // The results callback exists before the engine object does: it only needs the map.
    const pending = new Map<string, Pending>();
    const onResults = (results: NativeResult[]): void => {
      for (const r of results) {
        const p = pending.get(r.id);
        if (p === undefined) continue;
        pending.delete(r.id);
        p.resolve(toResult(r));
      }
    };
    return new Engine(await nativeLoad(native, onResults), pending);
  }

  /** Resolves when the request finishes; rejects InvalidArgumentError for bad input. */
  generate(request: GenerateRequest): Promise<GenerateResult> {
    try {
      if (this.#closing !== undefined) throw new EngineError("closed", "the engine is closed");
      const native = nativeRequest(request);
      if (this.#pending.has(native.id)) {
        throw new InvalidArgumentError(`id: a request with id '${native.id}' is already live`);
      }
      let resolve!: (result: GenerateResult) => void;
      const done = new Promise<GenerateResult>((r) => (resolve = r));
      callNative(() => this.#native.submit(native));
      this.#pending.set(native.id, { resolve, done });
      return done;
    } catch (error) {
      return Promise.reject(toEngineError(error));
    }
  }

  /** Ends a live request; its generate() resolves with finishReason "abort". */
  abort(id: string): void {
    if (typeof id !== "string") throw new InvalidArgumentError("abort: id must be a string");
    const aborted = callNative(() => this.#native.abort(id));
    // Not aborted but still pending: it just finished and its result is on the way.
    if (!aborted && !this.#pending.has(id)) {
      throw new NotFoundError(`abort: no live request has id '${id}'`);
    }
  }

  stats(): EngineStats {
    return callNative(() => this.#native.stats());
  }

  /** Logits [prompt.length * vocabSize] of every prompt position, the prompt run alone. */
  promptLogits(prompt: number[] | Int32Array, lora?: string): Promise<Float32Array> {
    try {
      if (this.#closing !== undefined) throw new EngineError("closed", "the engine is closed");
      const ids = tokenIds(prompt, "prompt");
      if (lora !== undefined && typeof lora !== "string") fail("lora: must be an adapter name");
      return awaitNative(() => this.#native.promptLogits(ids, lora ?? ""));
    } catch (error) {
      return Promise.reject(toEngineError(error));
    }
  }

  /** Stops the engine; pending generate() calls resolve with finishReason "abort". */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await awaitNative(() => this.#native.close());
      // The native close handed every live request's result to the event loop.
      await Promise.all([...this.#pending.values()].map((p) => p.done));
    })();
    return this.#closing;
  }
}

function toResult(r: NativeResult): GenerateResult {
  const result: GenerateResult = {
    id: r.id,
    tokens: Array.from(r.tokens),
    finishReason: r.finishReason,
    promptTokens: r.promptTokens,
    cachedTokens: r.cachedTokens,
    completionTokens: r.completionTokens,
    preemptions: r.preemptions,
    timings: { queueMs: r.queueMs, firstTokenMs: r.firstTokenMs, totalMs: r.totalMs },
  };
  if (r.finishReason === "error") result.error = r.error;
  if (r.embedding.length > 0) result.embedding = r.embedding;
  if (r.logprobs.length > 0 || r.topLogprobsK > 0) {
    const k = r.topLogprobsK;
    result.logprobs = Array.from(r.logprobs, (logprob, i) => ({
      logprob,
      top: Array.from({ length: k }, (_, j) => ({ id: r.topLogprobIds[i * k + j]!, logprob: r.topLogprobs[i * k + j]! })),
    }));
  }
  return result;
}

// --- validation: types and ranges here (camelCase names); model-dependent checks
// (vocabulary, context length) are native.

function fail(message: string): never {
  throw new InvalidArgumentError(message);
}

function integer(value: unknown, name: string, min: number, max: number, dflt: number): number {
  if (value === undefined) return dflt;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    fail(`${name}: must be an integer in [${min}, ${max}], got ${String(value)}`);
  }
  return value;
}

function number(value: unknown, name: string, ok: (x: number) => boolean, range: string, dflt: number): number {
  if (value === undefined) return dflt;
  if (typeof value !== "number" || !ok(value)) fail(`${name}: must be a number in ${range}, got ${String(value)}`);
  return value;
}

function tokenIds(value: unknown, name: string): Int32Array {
  if (value instanceof Int32Array) return value;
  if (!Array.isArray(value)) fail(`${name}: must be an array of token ids or an Int32Array`);
  const ids = new Int32Array(value.length);
  value.forEach((x: unknown, i) => {
    if (typeof x !== "number" || !Number.isInteger(x) || x < INT32_MIN || x > INT32_MAX) {
      fail(`${name}[${i}]: must be an integer token id, got ${String(x)}`);
    }
    ids[i] = x;
  });
  return ids;
}

const DEVICE = /^(cpu|cuda|cuda:\d+)$/;

function loadOptions(o: EngineLoadOptions): NativeLoadOptions {
  if (typeof o !== "object" || o === null) fail("Engine.load: options must be an object");
  if (typeof o.modelDir !== "string" || o.modelDir.length === 0) fail("modelDir: a model directory is required");
  const device: Device = o.device ?? "cpu";
  if (typeof device !== "string" || !DEVICE.test(device)) {
    fail(`device: must be "cpu", "cuda" or "cuda:N", got ${String(device)}`);
  }
  if (o.deterministic !== undefined && typeof o.deterministic !== "boolean") fail("deterministic: must be a boolean");
  if (o.enablePrefixCaching !== undefined && typeof o.enablePrefixCaching !== "boolean") {
    fail("enablePrefixCaching: must be a boolean");
  }
  if (o.quantize !== undefined && o.quantize !== "fp8") fail(`quantize: must be "fp8" when set, got ${String(o.quantize)}`);
  return {
    modelDir: o.modelDir,
    device,
    threads: integer(o.threads, "threads", 0, 4096, 0),
    blockSize: integer(o.blockSize, "blockSize", 1, 1024, 16),
    kvCacheBlocks: integer(o.kvCacheBlocks, "kvCacheBlocks", 0, INT32_MAX, 0),
    kvCacheMemoryFraction: number(o.kvCacheMemoryFraction, "kvCacheMemoryFraction", (x) => x > 0 && x <= 1, "(0, 1]", 0.9),
    kvCacheMaxBytes: integer(o.kvCacheMaxBytes, "kvCacheMaxBytes", 1, Number.MAX_SAFE_INTEGER, 2 ** 30),
    maxBatchTokens: integer(o.maxBatchTokens, "maxBatchTokens", 1, INT32_MAX, 2048),
    maxSeqs: integer(o.maxSeqs, "maxSeqs", 0, INT32_MAX, 0),
    maxModelLen: integer(o.maxModelLen, "maxModelLen", 0, INT32_MAX, 0),
    deterministic: o.deterministic ?? false,
    enablePrefixCaching: o.enablePrefixCaching ?? true,
    quantize: o.quantize ?? "",
    loras: loraSpecs(o.loras),
    maxLoras: integer(o.maxLoras, "maxLoras", 0, 4096, 0),
  };
}

function loraSpecs(loras: EngineLoadOptions["loras"]): NativeLoadOptions["loras"] {
  if (loras === undefined) return [];
  if (!Array.isArray(loras)) fail("loras: must be an array of { name, path }");
  return loras.map((l: unknown, i) => {
    const { name, path } = (l ?? {}) as { name?: unknown; path?: unknown };
    if (typeof name !== "string" || name.length === 0 || typeof path !== "string" || path.length === 0) {
      fail(`loras[${i}]: must be { name, path } with non-empty strings`);
    }
    return { name, path };
  });
}

function nativeRequest(r: GenerateRequest): NativeRequest {
  if (typeof r !== "object" || r === null) fail("generate: the request must be an object");
  const id = r.id ?? randomUUID();
  if (typeof id !== "string" || id.length === 0) fail("id: must be a non-empty string");
  const prompt = tokenIds(r.prompt, "prompt");
  if (prompt.length === 0) fail("prompt: is empty (at least one token is needed)");
  let seed = 0n;
  if (r.seed !== undefined) {
    if (typeof r.seed === "bigint") seed = BigInt.asUintN(64, r.seed);
    else if (typeof r.seed === "number" && Number.isSafeInteger(r.seed)) seed = BigInt.asUintN(64, BigInt(r.seed));
    else fail(`seed: must be an integer or a bigint, got ${String(r.seed)}`);
  }
  if (r.ignoreEos !== undefined && typeof r.ignoreEos !== "boolean") fail("ignoreEos: must be a boolean");
  return {
    id,
    prompt,
    maxTokens: integer(r.maxTokens, "maxTokens", 1, INT32_MAX, 16),
    temperature: number(r.temperature, "temperature", (x) => Number.isFinite(x) && x >= 0, "[0, inf) (0 = greedy)", 1),
    topK: integer(r.topK, "topK", 0, INT32_MAX, 0),
    topP: number(r.topP, "topP", (x) => x > 0 && x <= 1, "(0, 1]", 1),
    minP: number(r.minP, "minP", (x) => x >= 0 && x <= 1, "[0, 1]", 0),
    seed,
    hasSeed: r.seed !== undefined,
    stopTokenIds: tokenIds(r.stopTokenIds ?? [], "stopTokenIds"),
    ignoreEos: r.ignoreEos ?? false,
    priority: integer(r.priority, "priority", INT32_MIN, INT32_MAX, 0),
    presencePenalty: number(r.presencePenalty, "presencePenalty", (x) => x >= -2 && x <= 2, "[-2, 2]", 0),
    frequencyPenalty: number(r.frequencyPenalty, "frequencyPenalty", (x) => x >= -2 && x <= 2, "[-2, 2]", 0),
    repetitionPenalty: number(r.repetitionPenalty, "repetitionPenalty", (x) => x > 0 && x <= 10, "(0, 10]", 1),
    ...logitBias(r.logitBias),
    logprobs: integer(r.logprobs, "logprobs", 0, 20, -1),
    ...responseFormat(r.responseFormat),
    pooling: pooling(r.pooling),
    lora: r.lora === undefined ? "" : typeof r.lora === "string" ? r.lora : fail("lora: must be an adapter name"),
  };
}

function pooling(p: GenerateRequest["pooling"]): NativeRequest["pooling"] {
  if (p === undefined) return "none";
  if (p === "last" || p === "mean") return p;
  fail(`pooling: must be "last" or "mean", got ${String(p)}`);
}

function logitBias(bias: GenerateRequest["logitBias"]): { logitBiasIds: Int32Array; logitBiasValues: Float32Array } {
  const entries: Array<[number, number]> =
    bias === undefined ? [] : bias instanceof Map ? [...bias] : Object.entries(bias).map(([k, v]) => [Number(k), v]);
  const ids = new Int32Array(entries.length);
  const values = new Float32Array(entries.length);
  entries.forEach(([id, v], i) => {
    if (!Number.isInteger(id) || id < 0 || id > INT32_MAX) fail(`logitBias: key ${String(id)} is not a token id`);
    if (typeof v !== "number" || !(v >= -100 && v <= 100)) fail(`logitBias[${id}]: must be a number in [-100, 100], got ${String(v)}`);
    ids[i] = id;
    values[i] = v;
  });
  return { logitBiasIds: ids, logitBiasValues: values };
}

function responseFormat(f: GenerateRequest["responseFormat"]): Pick<NativeRequest, "responseFormat" | "jsonSchema"> {
  if (f === undefined || f.type === "text") return { responseFormat: "text", jsonSchema: "" };
  if (f.type === "json_object") return { responseFormat: "json_object", jsonSchema: "" };
  if (f.type === "json_schema") {
    const text = typeof f.schema === "string" ? f.schema : JSON.stringify(f.schema);
    if (typeof text !== "string") fail("responseFormat.schema: must be a JSON schema object");
    return { responseFormat: "json_schema", jsonSchema: text };
  }
  fail(`responseFormat.type: must be "text", "json_object" or "json_schema", got ${String((f as { type?: unknown }).type)}`);
}
