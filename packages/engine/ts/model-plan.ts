// What a generated model directory holds, before any byte is written: the final
// config.json and generation_config.json, and every tensor with its shape and the
// distribution its random values are drawn from.
//
// config.json carries the fields transformers 5 writes (rope_parameters, dtype)
// and the ones transformers 4 and most published checkpoints use (rope_theta,
// rope_scaling, torch_dtype), consistent with each other, so every reader finds
// what it expects.
import { InvalidArgumentError } from "./errors.js";
import { gemmaTokenizerFiles, type GemmaTokenizerFiles } from "./gemma-tokenizer-files.js";
import {
  ARCHITECTURES,
  MODEL_PRESETS,
  PRESET_NAMES,
  type Architecture,
  type ModelDType,
  type PresetName,
  type TokenizerChoice,
} from "./model-presets.js";

export interface PlannedTensor {
  name: string;
  shape: number[];
  mean: number;
  std: number;
}

export interface ModelPlan {
  preset: PresetName;
  architecture: Architecture;
  dtype: ModelDType;
  tokenizer: GemmaTokenizerFiles | null;
  config: Record<string, unknown>;
  generationConfig: Record<string, unknown>;
  tensors: PlannedTensor[];
  parameterCount: number;
}

export interface PlanModelOptions {
  preset?: PresetName;
  dtype?: ModelDType;
  overrides?: Record<string, unknown>;
  tokenizer?: TokenizerChoice;
}

// Random weights that still give varied generations at any width:
// - embeddings: std initializer_range (0.02, as Hugging Face initializes them);
// - linear layers: std LINEAR_GAIN / sqrt(fan_in), so each layer's output has unit
//   scale. With 0.02 everywhere a 64-wide model's layers barely touch the residual
//   stream and it repeats its input token forever (Gemma's tied, sqrt(hidden)-scaled
//   embedding makes that the top logit); at real widths the two rules nearly agree
//   (1.5 / sqrt(2048) = 0.033);
// - RMSNorm weights: Gemma applies (1 + w), so its weights sit around 0; the Llama
//   family applies w, so around 1; spread enough that a norm applied wrongly shows.
//   Biases (Qwen2's q/k/v) get std BIAS_STD, large enough that a missing one shows.
const LINEAR_GAIN = 1.5;
const BIAS_STD = 0.5;
const NORM_STD = 0.1;
/** Fields transformers holds as Python floats (written as 10000.0, 1e-06). */
export const FLOAT_FIELDS: ReadonlySet<string> = new Set([
  "attention_dropout",
  "initializer_range",
  "rms_norm_eps",
  "rope_theta",
  "factor",
  "low_freq_factor",
  "high_freq_factor",
  "attention_factor",
  "beta_fast",
  "beta_slow",
  "partial_rotary_factor",
  "attn_logit_softcapping",
  "final_logit_softcapping",
  "rope_local_base_freq",
]);
const DTYPE_NAMES: Record<ModelDType, string> = { f32: "float32", bf16: "bfloat16" };
const POSITIVE_INTEGER_FIELDS = [
  "vocab_size",
  "hidden_size",
  "intermediate_size",
  "num_hidden_layers",
  "num_attention_heads",
  "num_key_value_heads",
  "head_dim",
  "max_position_embeddings",
] as const;

// Each layer's attention type as the config class fills in layer_types.
const LAYER_PATTERN: Partial<Record<Architecture, (i: number, config: Record<string, unknown>) => string>> = {
  gemma2: (i) => ((i + 1) % 2 ? "sliding_attention" : "full_attention"),
  gemma3_text: (i, c) => ((i + 1) % (c._sliding_window_pattern as number) ? "sliding_attention" : "full_attention"),
  qwen2: (i, c) => windowedQwen(i, c),
  qwen3: (i, c) => windowedQwen(i, c),
};

function windowedQwen(i: number, config: Record<string, unknown>): string {
  const windowed = config.use_sliding_window === true && config.sliding_window !== null;
  return windowed && i >= (config.max_window_layers as number) ? "sliding_attention" : "full_attention";
}

/** Gemma applies its norms as (1 + w), the others as w. */
function isGemma(arch: Architecture): boolean {
  return arch === "gemma" || arch === "gemma2" || arch === "gemma3_text";
}

export async function planModel(options: PlanModelOptions = {}): Promise<ModelPlan> {
  const presetName = options.preset ?? "tiny-gemma";
  if (!PRESET_NAMES.includes(presetName)) {
    throw new InvalidArgumentError(`preset: unknown preset "${String(presetName)}" (one of ${PRESET_NAMES.join(", ")})`);
  }
  const preset = MODEL_PRESETS[presetName];
  const dtype = options.dtype ?? preset.dtype;
  if (dtype !== "f32" && dtype !== "bf16") {
    throw new InvalidArgumentError(`dtype: must be "f32" or "bf16", got "${String(dtype)}"`);
  }
  const tokenizerChoice = options.tokenizer ?? preset.tokenizer;
  if (tokenizerChoice !== "gemma" && tokenizerChoice !== "none") {
    throw new InvalidArgumentError(`tokenizer: must be "gemma" or "none", got "${String(tokenizerChoice)}"`);
  }
  const overrides = options.overrides ?? {};
  if (typeof overrides !== "object" || overrides === null || Array.isArray(overrides)) {
    throw new InvalidArgumentError("overrides: must be an object of config.json fields");
  }

  const arch = ARCHITECTURES[preset.architecture];
  const config: Record<string, unknown> = { ...arch.config, ...arch.ids, ...preset.config };
  const tokenizer = tokenizerChoice === "gemma" ? await gemmaTokenizerFiles() : null;
  if (tokenizer) {
    // A preset may have more rows than the tokenizer has tokens (Gemma 3 4B's 262,208).
    config.vocab_size = Math.max(tokenizer.vocabSize, (preset.config.vocab_size as number | undefined) ?? 0);
    config.bos_token_id = tokenizer.bosTokenId;
    config.eos_token_id = tokenizer.eosTokenId;
    config.pad_token_id = tokenizer.padTokenId;
  }
  applyOverrides(config, overrides, preset.architecture);
  validate(config, tokenizer);

  // Derived fields, consistent with the (possibly overridden) shape.
  const scaling = config.rope_scaling as Record<string, unknown> | null | undefined;
  const rope = scaling
    ? { ...scaling, rope_type: scaling.rope_type ?? scaling.type, rope_theta: config.rope_theta }
    : { rope_theta: config.rope_theta, rope_type: "default" };
  // Gemma 3 has one rotary embedding per layer type (rope_scaling is the global one's).
  config.rope_parameters = preset.architecture === "gemma3_text"
    ? { full_attention: rope, sliding_attention: { rope_theta: config.rope_local_base_freq, rope_type: "default" } }
    : rope;
  const layerTypes = LAYER_PATTERN[preset.architecture];
  if (layerTypes) {
    config.layer_types = Array.from({ length: config.num_hidden_layers as number }, (_, i) => layerTypes(i, config));
  }
  config.model_type = preset.architecture;
  config.architectures = [arch.className];
  config.torch_dtype = DTYPE_NAMES[dtype];
  config.dtype = DTYPE_NAMES[dtype];

  const generationConfig: Record<string, unknown> = { bos_token_id: config.bos_token_id };
  generationConfig.eos_token_id = tokenizer
    ? [tokenizer.eosTokenId, tokenizer.endOfTurnTokenId] // a chat turn ends with <end_of_turn>
    : config.eos_token_id;
  if (config.pad_token_id !== null && config.pad_token_id !== undefined) {
    generationConfig.pad_token_id = config.pad_token_id;
  }

  const tensors = planTensors(config, preset.architecture);
  const parameterCount = tensors.reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0);
  return {
    preset: presetName,
    architecture: preset.architecture,
    dtype,
    tokenizer,
    config: sortKeys(config),
    generationConfig: sortKeys(generationConfig),
    tensors,
    parameterCount,
  };
}

function applyOverrides(config: Record<string, unknown>, overrides: Record<string, unknown>, arch: Architecture): void {
  for (const [key, value] of Object.entries(overrides)) {
    if (key === "model_type" && value !== arch) {
      throw new InvalidArgumentError(`overrides.model_type: the preset is a ${arch} model; pick another preset instead`);
    }
    if (key === "architectures" || key === "torch_dtype" || key === "dtype" || key === "layer_types") {
      throw new InvalidArgumentError(`overrides.${key}: set by the generator (use the dtype option for the dtype)`);
    }
    if (key === "rope_parameters") {
      // transformers 5's spelling: split it back into rope_theta and rope_scaling.
      if (typeof value !== "object" || value === null) {
        throw new InvalidArgumentError("overrides.rope_parameters: must be an object with rope_theta");
      }
      const { rope_theta: theta, ...rest } = value as Record<string, unknown>;
      if (theta !== undefined) config.rope_theta = theta;
      config.rope_scaling = rest.rope_type === undefined || rest.rope_type === "default" ? null : rest;
      continue;
    }
    config[key] = value;
  }
}

function validate(config: Record<string, unknown>, tokenizer: GemmaTokenizerFiles | null): void {
  for (const field of POSITIVE_INTEGER_FIELDS) {
    const v = config[field];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
      throw new InvalidArgumentError(`${field}: must be a positive integer, got ${JSON.stringify(v)}`);
    }
  }
  const heads = config.num_attention_heads as number;
  const kvHeads = config.num_key_value_heads as number;
  if (heads % kvHeads !== 0) {
    throw new InvalidArgumentError(
      `num_key_value_heads: ${kvHeads} does not divide num_attention_heads (${heads})`,
    );
  }
  if ((config.head_dim as number) % 2 !== 0) {
    throw new InvalidArgumentError(`head_dim: rotary embeddings need an even head_dim, got ${config.head_dim}`);
  }
  for (const field of ["rope_theta", "rms_norm_eps"]) {
    const v = config[field];
    if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v)) {
      throw new InvalidArgumentError(`${field}: must be a positive number, got ${JSON.stringify(v)}`);
    }
  }
  const window = config.sliding_window;
  if (window !== null && window !== undefined && (typeof window !== "number" || !Number.isSafeInteger(window) || window <= 0)) {
    throw new InvalidArgumentError(`sliding_window: must be a positive integer or null, got ${JSON.stringify(window)}`);
  }
  const range = config.initializer_range;
  if (typeof range !== "number" || !(range >= 0) || !Number.isFinite(range)) {
    throw new InvalidArgumentError(`initializer_range: must be a number >= 0, got ${JSON.stringify(range)}`);
  }
  for (const field of ["tie_word_embeddings", "attention_bias", "mlp_bias"]) {
    if (field in config && typeof config[field] !== "boolean") {
      throw new InvalidArgumentError(`${field}: must be true or false, got ${JSON.stringify(config[field])}`);
    }
  }
  const scaling = config.rope_scaling;
  if (scaling !== null && scaling !== undefined && (typeof scaling !== "object" || Array.isArray(scaling))) {
    throw new InvalidArgumentError(`rope_scaling: must be null or an object, got ${JSON.stringify(scaling)}`);
  }
  if (tokenizer && (config.vocab_size as number) < tokenizer.vocabSize) {
    throw new InvalidArgumentError(
      `vocab_size: the Gemma tokenizer has ${tokenizer.vocabSize} tokens, so vocab_size must be at least that ` +
        `(got ${config.vocab_size}); use tokenizer "none" for a smaller vocabulary`,
    );
  }
  const vocab = config.vocab_size as number;
  for (const field of ["bos_token_id", "eos_token_id", "pad_token_id"]) {
    const ids = ([] as unknown[]).concat(config[field] ?? []);
    for (const id of ids) {
      if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= vocab) {
        throw new InvalidArgumentError(`${field}: ${JSON.stringify(config[field])} is not a token id below vocab_size ${vocab}`);
      }
    }
  }
}

/** Tensor names, shapes and order as transformers' state_dict has them. */
function planTensors(config: Record<string, unknown>, arch: Architecture): PlannedTensor[] {
  const V = config.vocab_size as number;
  const H = config.hidden_size as number;
  const I = config.intermediate_size as number;
  const L = config.num_hidden_layers as number;
  const qWidth = (config.num_attention_heads as number) * (config.head_dim as number);
  const kvWidth = (config.num_key_value_heads as number) * (config.head_dim as number);
  const std = config.initializer_range as number;
  const headDim = config.head_dim as number;
  const normMean = isGemma(arch) ? 0 : 1;
  const sandwichNorms = arch === "gemma2" || arch === "gemma3_text";
  const qkNorm = arch === "gemma3_text" || arch === "qwen3";
  const qkvBias = arch === "qwen2" || config.attention_bias === true;
  const oBias = arch !== "qwen2" && config.attention_bias === true;
  const mlpBias = arch === "llama" && config.mlp_bias === true;

  const out: PlannedTensor[] = [];
  const linear = (name: string, rows: number, cols: number, bias: boolean): void => {
    out.push({ name: `${name}.weight`, shape: [rows, cols], mean: 0, std: LINEAR_GAIN / Math.sqrt(cols) });
    if (bias) out.push({ name: `${name}.bias`, shape: [rows], mean: 0, std: BIAS_STD });
  };
  const norm = (name: string, width = H): void => {
    out.push({ name: `${name}.weight`, shape: [width], mean: normMean, std: NORM_STD });
  };

  out.push({ name: "model.embed_tokens.weight", shape: [V, H], mean: 0, std });
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}`;
    linear(`${p}.self_attn.q_proj`, qWidth, H, qkvBias);
    linear(`${p}.self_attn.k_proj`, kvWidth, H, qkvBias);
    linear(`${p}.self_attn.v_proj`, kvWidth, H, qkvBias);
    linear(`${p}.self_attn.o_proj`, H, qWidth, oBias);
    if (qkNorm) {
      norm(`${p}.self_attn.q_norm`, headDim);
      norm(`${p}.self_attn.k_norm`, headDim);
    }
    linear(`${p}.mlp.gate_proj`, I, H, mlpBias);
    linear(`${p}.mlp.up_proj`, I, H, mlpBias);
    linear(`${p}.mlp.down_proj`, H, I, mlpBias);
    norm(`${p}.input_layernorm`);
    norm(`${p}.post_attention_layernorm`);
    if (sandwichNorms) {
      norm(`${p}.pre_feedforward_layernorm`);
      norm(`${p}.post_feedforward_layernorm`);
    }
  }
  norm("model.norm");
  if (config.tie_word_embeddings !== true) {
    out.push({ name: "lm_head.weight", shape: [V, H], mean: 0, std: LINEAR_GAIN / Math.sqrt(H) });
  }
  return out;
}

function sortKeys(obj: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(obj).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
