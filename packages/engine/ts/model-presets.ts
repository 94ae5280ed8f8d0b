// The shapes makeModel can generate. Config fields use Hugging Face's names and
// values; fields every model of an architecture shares live in ARCHITECTURES.
export type Architecture = "gemma" | "llama" | "qwen2" | "mistral";
export type ModelDType = "f32" | "bf16";
export type TokenizerChoice = "gemma" | "none";

export interface ModelPreset {
  architecture: Architecture;
  dtype: ModelDType;
  tokenizer: TokenizerChoice;
  /** Shape fields; vocab_size is the tokenizer's size when a tokenizer is copied. */
  config: Record<string, unknown>;
}

export interface ArchitectureDefaults {
  className: string;
  /** Fields transformers writes for this architecture, with its defaults. */
  config: Record<string, unknown>;
  /** Token ids when the model has no tokenizer. */
  ids: { bos_token_id: number | null; eos_token_id: number | null; pad_token_id: number | null };
}

export const ARCHITECTURES: Record<Architecture, ArchitectureDefaults> = {
  gemma: {
    className: "GemmaForCausalLM",
    config: {
      attention_bias: false,
      attention_dropout: 0.0,
      hidden_act: "gelu_pytorch_tanh",
      hidden_activation: "gelu_pytorch_tanh", // transformers 4.x reads this one
      initializer_range: 0.02,
      max_position_embeddings: 8192,
      rms_norm_eps: 1e-6,
      rope_theta: 10000.0,
      tie_word_embeddings: true,
      use_bidirectional_attention: null,
      use_cache: true,
    },
    ids: { bos_token_id: 2, eos_token_id: 1, pad_token_id: 0 },
  },
  llama: {
    className: "LlamaForCausalLM",
    config: {
      attention_bias: false,
      attention_dropout: 0.0,
      hidden_act: "silu",
      initializer_range: 0.02,
      max_position_embeddings: 2048,
      mlp_bias: false,
      pretraining_tp: 1,
      rms_norm_eps: 1e-6,
      rope_scaling: null,
      rope_theta: 10000.0,
      tie_word_embeddings: false,
      use_cache: true,
    },
    ids: { bos_token_id: 1, eos_token_id: 2, pad_token_id: null },
  },
  qwen2: {
    className: "Qwen2ForCausalLM",
    config: {
      attention_dropout: 0.0,
      hidden_act: "silu",
      initializer_range: 0.02,
      max_position_embeddings: 32768,
      max_window_layers: 28,
      rms_norm_eps: 1e-6,
      rope_scaling: null,
      rope_theta: 10000.0,
      sliding_window: null,
      tie_word_embeddings: false,
      use_cache: true,
      use_sliding_window: false,
    },
    ids: { bos_token_id: 1, eos_token_id: 2, pad_token_id: null },
  },
  mistral: {
    className: "MistralForCausalLM",
    config: {
      attention_dropout: 0.0,
      hidden_act: "silu",
      initializer_range: 0.02,
      max_position_embeddings: 32768,
      rms_norm_eps: 1e-6,
      rope_theta: 10000.0,
      sliding_window: null,
      tie_word_embeddings: false,
      use_cache: true,
    },
    ids: { bos_token_id: 1, eos_token_id: 2, pad_token_id: null },
  },
};

export const PRESET_NAMES = ["tiny-gemma", "gemma-2b", "gemma-7b", "tiny-llama", "tiny-qwen2", "tiny-mistral"] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

export const MODEL_PRESETS: Record<PresetName, ModelPreset> = {
  // The demo and test default. The 262k-row embedding is most of the file, so the
  // hidden size stays at 64 (about 68 MB at f32); head_dim 32 with 4 query heads
  // makes the attention width differ from the hidden size, and one KV head is MQA.
  "tiny-gemma": {
    architecture: "gemma",
    dtype: "f32",
    tokenizer: "gemma",
    config: {
      hidden_size: 64,
      intermediate_size: 256,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 1,
      head_dim: 32,
    },
  },
  // Gemma 2B's shapes (MQA); the vocabulary is the bundled tokenizer's.
  "gemma-2b": {
    architecture: "gemma",
    dtype: "bf16",
    tokenizer: "gemma",
    config: {
      hidden_size: 2048,
      intermediate_size: 16384,
      num_hidden_layers: 18,
      num_attention_heads: 8,
      num_key_value_heads: 1,
      head_dim: 256,
    },
  },
  // Gemma 7B's shapes (multi-head attention).
  "gemma-7b": {
    architecture: "gemma",
    dtype: "bf16",
    tokenizer: "gemma",
    config: {
      hidden_size: 3072,
      intermediate_size: 24576,
      num_hidden_layers: 28,
      num_attention_heads: 16,
      num_key_value_heads: 16,
      head_dim: 256,
    },
  },
  // Llama 3.1 style: grouped-query attention and llama3 rope scaling, whose three
  // frequency bands (kept, smoothed, divided) all occur at head_dim 16.
  "tiny-llama": {
    architecture: "llama",
    dtype: "f32",
    tokenizer: "none",
    config: {
      vocab_size: 1000,
      hidden_size: 64,
      intermediate_size: 192,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 16,
      max_position_embeddings: 131072,
      rms_norm_eps: 1e-5,
      rope_theta: 500000.0,
      rope_scaling: {
        factor: 8.0,
        high_freq_factor: 4.0,
        low_freq_factor: 1.0,
        original_max_position_embeddings: 8192,
        rope_type: "llama3",
      },
    },
  },
  // Qwen2: biases on q/k/v, tied embeddings as in the small Qwen2 models.
  "tiny-qwen2": {
    architecture: "qwen2",
    dtype: "f32",
    tokenizer: "none",
    config: {
      vocab_size: 1000,
      hidden_size: 64,
      intermediate_size: 160,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 16,
      rope_theta: 1000000.0,
      tie_word_embeddings: true,
    },
  },
  // Mistral 7B v0.2+ style: GQA, rope_theta 1e6, no sliding window.
  "tiny-mistral": {
    architecture: "mistral",
    dtype: "f32",
    tokenizer: "none",
    config: {
      vocab_size: 1000,
      hidden_size: 64,
      intermediate_size: 224,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 1,
      head_dim: 16,
      rms_norm_eps: 1e-5,
      rope_theta: 1000000.0,
    },
  },
};
