// The native boundary, declared in one place: every function the addon
// (build/Release/batchgen_engine.node, src/napi/binding.cpp) exports, every
// field it reads or writes, and the mapping of its errors onto error classes.
// Nothing else imports the addon.
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

import {
  DeviceError,
  EngineError,
  InvalidArgumentError,
  ModelLoadError,
  NotFoundError,
  OutOfMemoryError,
  UnsupportedError,
} from "./errors.js";

/** load() options: every field explicit (engine.ts applies the defaults). */
export interface NativeLoadOptions {
  modelDir: string;
  device: string;
  threads: number;
  blockSize: number;
  kvCacheBlocks: number;
  kvCacheMemoryFraction: number;
  kvCacheMaxBytes: number;
  maxBatchTokens: number;
  /** 0 = derived from the KV cache (NativeModelInfo.maxSeqs). */
  maxSeqs: number;
  maxModelLen: number;
  deterministic: boolean;
  enablePrefixCaching: boolean;
  /** "" (weights as stored) or "fp8" (float linear weights quantized at load, per-channel scales). */
  quantize: string;
  /** LoRA adapters requests may name: peft adapter directories. */
  loras: { name: string; path: string }[];
  /** Adapter slots in device memory; 0 = one per adapter as far as a tenth of the free memory goes, at least 8. */
  maxLoras: number;
}

/** One request as submit() reads it. */
export interface NativeRequest {
  id: string;
  prompt: Int32Array;
  maxTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  seed: bigint;          // used only when hasSeed
  hasSeed: boolean;
  stopTokenIds: Int32Array;
  ignoreEos: boolean;
  priority: number;
  presencePenalty: number;
  frequencyPenalty: number;
  repetitionPenalty: number;
  /** logit_bias as parallel arrays (ids, added values). */
  logitBiasIds: Int32Array;
  logitBiasValues: Float32Array;
  /** -1 = off; else alternatives per token (0..20). */
  logprobs: number;
  responseFormat: "text" | "json_object" | "json_schema";
  /** The JSON Schema's text when responseFormat is "json_schema", else "". */
  jsonSchema: string;
  /** "none": a generation; else an embedding request pooled so (engine.h GenerateRequest::pooling). */
  pooling: "none" | "last" | "mean";
  /** The LoRA adapter's name (NativeLoadOptions.loras), "" = the base model. */
  lora: string;
}

export interface NativeResult {
  id: string;
  tokens: Int32Array;
  finishReason: "stop" | "length" | "abort" | "error";
  error: string;         // "" unless finishReason is "error"
  promptTokens: number;
  /** Prompt tokens served from the prefix cache (at the request's first admission). */
  cachedTokens: number;
  completionTokens: number;
  preemptions: number;
  queueMs: number;
  firstTokenMs: number;
  totalMs: number;
  /** Per generated token: its logprob (empty unless the request asked for logprobs). */
  logprobs: Float32Array;
  /** Alternatives per token in topLogprobIds / topLogprobs ([tokens * k], best first). */
  topLogprobsK: number;
  topLogprobIds: Int32Array;
  topLogprobs: Float32Array;
  /** Embedding requests: the pooled final-norm hidden state (empty otherwise, or when it failed). */
  embedding: Float32Array;
}

export interface NativeStats {
  running: number;
  waiting: number;
  kvBlocksTotal: number;
  /** KV blocks referenced by live requests; a block shared by several (a common prefix, n > 1) counts once. */
  kvBlocksUsed: number;
  /** kvBlocksTotal - kvBlocksUsed: never-used blocks plus kvBlocksCached. */
  kvBlocksFree: number;
  /** Free blocks that still hold a cached prefix (counted in kvBlocksFree too). */
  kvBlocksCached: number;
  /** Cached blocks dropped from the prefix cache to make room, since load. */
  kvBlocksEvicted: number;
  /** Most KV blocks in use at once since load, taken after each step's allocations. */
  kvBlocksPeak: number;
  /** Prompt tokens run through the model, recomputation after preemption included. */
  promptTokensProcessed: number;
  /** Prompt tokens served from the prefix cache instead of computed. */
  promptTokensCached: number;
  generatedTokens: number;
  steps: number;
  preemptions: number;
  lastStepMs: number;
  /** The running-sequence cap (NativeModelInfo.maxSeqs). */
  maxSeqs: number;
  /**
   * Host time, summed over steps (engine.h EngineStats): hostMs inside step() outside
   * the backend's forward and sample calls (divide by steps); hostGapMs from one step's
   * tokens reaching the host to the next step's forward call (divide by hostGaps).
   */
  hostMs: number;
  hostGapMs: number;
  hostGaps: number;
  /** Grammar token masks applied so far (one per structured-output row and step). */
  grammarMasks: number;
  /**
   * Masks built and handed to the sampler: rows in the same grammar state (same budget
   * clamp and stop ids) share one, so a batch on one schema builds far fewer than
   * grammarMasks. grammarHostMs: host time building them, summed over steps.
   */
  grammarDistinctMasks: number;
  grammarHostMs: number;
  /** LoRA adapters in a device slot now. */
  lorasResident: string[];
  /** Adapters read into a slot (first use or after an eviction), and evictions. */
  loraLoads: number;
  loraEvictions: number;
}

export interface NativeModelInfo {
  architecture: string;
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  maxModelLen: number;
  eosTokenIds: number[];
  bosTokenId: number;
  device: string;
  deviceName: string;
  /** Bytes the backend holds the weights in (packed, where quantized weights run packed). */
  weightBytes: number;
  weightParams: number;
  /** Each storage with its share of the parameters, and how quantized weights run. */
  weightFormat: string;
  /** K and V bytes one token takes over all layers. */
  kvBytesPerToken: number;
  blockSize: number;
  kvBlocks: number;
  /** Sequences running at once: the maxSeqs option, or derived from the KV cache. */
  maxSeqs: number;
  /** The sequence length maxSeqs was derived for (min(1024, maxModelLen)); 0 when given. */
  maxSeqsSeqLen: number;
  /** LoRA adapter names; slots that hold adapters at once, their rank and device bytes each. */
  loras: string[];
  maxLoras: number;
  loraRank: number;
  loraSlotBytes: number;
}

/** The engine object load() resolves with; it steps on its own native thread. */
export interface NativeEngine {
  /** Queues a request; throws (code invalid_argument) for bad input or a live duplicate id. */
  submit(request: NativeRequest): void;
  /** False when no live request has this id. */
  abort(id: string): boolean;
  stats(): NativeStats;
  modelInfo(): NativeModelInfo;
  promptLogits(prompt: Int32Array, lora?: string): Promise<Float32Array>;
  /** Aborts live requests (their results still arrive through onResults) and stops the thread. */
  close(): Promise<void>;
}

/** Called on the event loop with the results that finished in one engine step. */
export type NativeResultsCallback = (results: NativeResult[]) => void;

interface NativeAddon {
  load(options: NativeLoadOptions, onResults: NativeResultsCallback): Promise<NativeEngine>;
}

const ADDON_PATH = fileURLToPath(new URL("../build/Release/batchgen_engine.node", import.meta.url));
let addon: NativeAddon | undefined;

function nativeAddon(): NativeAddon {
  if (addon === undefined) {
    try {
      addon = createRequire(import.meta.url)(ADDON_PATH) as NativeAddon;
    } catch (cause) {
      throw new EngineError(
        "internal",
        `the native engine could not be loaded from ${ADDON_PATH}; build it with ` +
          "`pnpm --filter @batchgen/engine build`",
        { cause },
      );
    }
  }
  return addon;
}

/** Turns whatever the addon threw into the matching EngineError subclass. */
export function toEngineError(error: unknown): EngineError {
  if (error instanceof EngineError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | null)?.code;
  const options = { cause: error };
  switch (code) {
    case "invalid_argument": return new InvalidArgumentError(message, options);
    case "model_load": return new ModelLoadError(message, options);
    case "unsupported": return new UnsupportedError(message, options);
    case "out_of_memory": return new OutOfMemoryError(message, options);
    case "device": return new DeviceError(message, options);
    case "not_found": return new NotFoundError(message, options);
    default: return new EngineError(typeof code === "string" ? code : "internal", message, options);
  }
}

/** Runs a native call, rethrowing its errors as EngineErrors. */
export function callNative<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    throw toEngineError(error);
  }
}

/** Same for a native call that returns a promise. */
export async function awaitNative<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw toEngineError(error);
  }
}

export function nativeLoad(
  options: NativeLoadOptions,
  onResults: NativeResultsCallback,
): Promise<NativeEngine> {
  return awaitNative(() => nativeAddon().load(options, onResults));
}
