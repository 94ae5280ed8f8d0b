// The data the Engine takes and gives (its class is in engine.ts). Stats and
// model info pass through unchanged, so their shape is the one native.ts declares.
import type { NativeModelInfo, NativeResult, NativeStats } from "./native.js";

export type Device = "cpu" | "cuda" | `cuda:${number}`;

export interface EngineLoadOptions {
  /** A Hugging Face model directory: config.json and *.safetensors. */
  modelDir: string;
  /** Default "cpu". */
  device?: Device;
  /** CPU backend threads; default 0 = all cores. */
  threads?: number;
  /** KV tokens per cache block; default 16. */
  blockSize?: number;
  /** KV cache size in blocks; default 0 = size it from memory (next two options). */
  kvCacheBlocks?: number;
  /** Share of free memory after the weights for the KV cache; default 0.9. */
  kvCacheMemoryFraction?: number;
  /** CPU only: cap on the KV cache's bytes; default 1 GiB. */
  kvCacheMaxBytes?: number;
  /** Token budget of one step (decode tokens + prefill chunks); default 2048. */
  maxBatchTokens?: number;
  /**
   * Sequences running at once; default 0 = as many sequences of 1,024 tokens (or
   * maxModelLen, when shorter) as the KV cache holds, at most maxBatchTokens
   * (ModelInfo.maxSeqs says what it came to).
   */
  maxSeqs?: number;
  /**
   * Context length; default 0 = the model's max_position_embeddings, lowered to
   * what the KV cache holds when the cache is smaller.
   */
  maxModelLen?: number;
  /** Batch-invariant results on every backend (may cost speed); default false. */
  deterministic?: boolean;
  /**
   * Automatic prefix caching: requests whose prompts start with the same full KV
   * blocks share them and compute only the rest; default true.
   */
  enablePrefixCaching?: boolean;
  /**
   * "fp8": quantize every decoder linear weight (q/k/v/o, gate/up/down) held in
   * BF16, F16 or F32 to fp8 e4m3 at load, one scale per output channel (the
   * embedding and the head keep their dtype); default: weights as stored (a
   * quantized checkpoint, AWQ, GPTQ, FP8, NF4 or GGUF Q4, runs in its own format).
   */
  quantize?: "fp8";
  /**
   * LoRA adapters (peft directories: adapter_config.json, adapter_model.safetensors)
   * that requests may name by `lora`; checked at load, read into a device slot on
   * first use.
   */
  loras?: { name: string; path: string }[];
  /** Adapter slots in device memory (least recently used out); default 0 = one per adapter as far as a tenth of the free memory goes, at least 8. */
  maxLoras?: number;
}

/**
 * One generation. A prompt must leave room for one generated token (length <
 * model.maxModelLen); generation stops at maxTokens or at the context length,
 * whichever comes first (finishReason "length").
 */
export interface GenerateRequest {
  /** Unique among live requests; default: a random UUID. */
  id?: string;
  /** Token ids. */
  prompt: number[] | Int32Array;
  /** Default 16. */
  maxTokens?: number;
  /** Default 1; 0 = greedy. */
  temperature?: number;
  /** Default 0 = off. */
  topK?: number;
  /** In (0, 1]; default 1 = off. */
  topP?: number;
  /** In [0, 1]; default 0 = off. */
  minP?: number;
  /** Default: derived from the id. The random stream is keyed by (seed, position). */
  seed?: number | bigint;
  /** Generation stops after any of these (included in tokens). */
  stopTokenIds?: number[];
  /** When false (default), the model's EOS ids stop generation too. */
  ignoreEos?: boolean;
  /** Lower runs first; FIFO within a priority. Default 0. */
  priority?: number;
  /** OpenAI's presence_penalty, in [-2, 2], over generated tokens; default 0. */
  presencePenalty?: number;
  /** OpenAI's frequency_penalty, in [-2, 2], over generated tokens; default 0. */
  frequencyPenalty?: number;
  /** vLLM's repetition_penalty, in (0, 10], over prompt and generated tokens; default 1 = off. */
  repetitionPenalty?: number;
  /** Token id -> value in [-100, 100] added to its logit. */
  logitBias?: Record<number, number> | Map<number, number>;
  /**
   * Logprobs of each generated token and this many alternatives (0..20); default off.
   * Values are log_softmax of the model's raw logits (before bias, penalties, grammar, temperature).
   */
  logprobs?: number;
  /** Structured output: any JSON object, or JSON that matches a schema (the strict-mode subset). */
  responseFormat?: { type: "text" } | { type: "json_object" } | { type: "json_schema"; schema: unknown };
  /**
   * An embedding request: the prompt runs as a prefill (in the same continuous batch
   * as generations) and no token is generated; the result's `embedding` is the
   * model's final-norm hidden states pooled over the prompt: the last position's
   * ("last") or their mean ("mean"). The prompt may fill the whole context; the
   * sampling fields are ignored.
   */
  pooling?: "last" | "mean";
  /** A LoRA adapter's name (EngineLoadOptions.loras); default: the base model. */
  lora?: string;
}

/** One generated token's logprob and its best alternatives (when asked for). */
export interface TokenLogprob {
  logprob: number;
  top: Array<{ id: number; logprob: number }>;
}

export type FinishReason = NativeResult["finishReason"];

export interface GenerateResult {
  id: string;
  /** Generated ids (a stop token included when it stopped on one). */
  tokens: number[];
  finishReason: FinishReason;
  /** Set when finishReason is "error". */
  error?: string;
  promptTokens: number;
  /** Prompt tokens served from the prefix cache instead of computed. */
  cachedTokens: number;
  completionTokens: number;
  /** Times the request was preempted (and recomputed) under KV pressure. */
  preemptions: number;
  /** Milliseconds from generate() reaching the engine: to first scheduled, to first token, to finished. */
  timings: { queueMs: number; firstTokenMs: number; totalMs: number };
  /** Per generated token, when the request asked for logprobs. */
  logprobs?: TokenLogprob[];
  /** Embedding requests that finished ("stop"): the pooled hidden state (hiddenSize values, not normalized). */
  embedding?: Float32Array;
}

/** Live counters of the engine, as the native side reports them. */
export type EngineStats = NativeStats;

/** The loaded model and its KV cache, as the native side reports them. */
export type ModelInfo = NativeModelInfo;
