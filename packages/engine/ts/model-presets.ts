// The shapes makeModel can generate. Config fields use Hugging Face's names and
// values; fields every model of an architecture shares live in ARCHITECTURES.
/** The config's model_type. */
export type Architecture = "gemma" | "gemma2" | "gemma3_text" | "llama" | "qwen2" | "qwen3" | "mistral";
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
  gemma2: {
    className: "Gemma2ForCausalLM",
    config: {
      attention_bias: false,
      attention_dropout: 0.0,
      attn_logit_softcapping: 50.0,
      final_logit_softcapping: 30.0,
      hidden_act: "gelu_pytorch_tanh", // what readers of the Gemma 1 field find
      hidden_activation: "gelu_pytorch_tanh",
      initializer_range: 0.02,
      max_position_embeddings: 8192,
      query_pre_attn_scalar: 256,
      rms_norm_eps: 1e-6,
      rope_scaling: null,
      rope_theta: 10000.0,
      sliding_window: 4096,
      tie_word_embeddings: true,
      use_bidirectional_attention: null,
      use_cache: true,
    },
    ids: { bos_token_id: 2, eos_token_id: 1, pad_token_id: 0 },
  },
  gemma3_text: {
    className: "Gemma3ForCausalLM",
    config: {
      _sliding_window_pattern: 6,
      attention_bias: false,
      attention_dropout: 0.0,
      attn_logit_softcapping: null,
      final_logit_softcapping: null,
      hidden_act: "gelu_pytorch_tanh",
      hidden_activation: "gelu_pytorch_tanh",
      initializer_range: 0.02,
      max_position_embeddings: 131072,
      query_pre_attn_scalar: 256,
      rms_norm_eps: 1e-6,
      rope_local_base_freq: 10000.0, // the sliding-window layers' rope_theta
      rope_scaling: null, // the full-attention layers' scaling
      rope_theta: 1000000.0,
      sliding_window: 4096,
      tie_word_embeddings: true,
      use_bidirectional_attention: false,
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
  qwen3: {
    className: "Qwen3ForCausalLM",
    config: {
      attention_bias: false,
      attention_dropout: 0.0,
      hidden_act: "silu",
      initializer_range: 0.02,
      max_position_embeddings: 40960,
      max_window_layers: 36,
      rms_norm_eps: 1e-6,
      rope_scaling: null,
      rope_theta: 1000000.0,
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

export const PRESET_NAMES = [
  "tiny-gemma",
  "gemma-2b",
  "gemma-7b",
  "tiny-llama",
  "tiny-qwen2",
  "tiny-mistral",
  "tiny-gemma2",
  "tiny-gemma3",
  "tiny-qwen3",
  "tiny-llama3.2",
  "gemma2-2b",
  "gemma2-9b",
  "gemma3-1b",
  "gemma3-4b",
  "gemma3-12b",
  "qwen3-8b",
  "llama3.2-3b",
] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

// The tiny Llama presets' shape (Llama 3.x: GQA, rope_theta 500k, long context).
const TINY_LLAMA_SHAPE = {
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
};

const LLAMA32_ROPE = {
  factor: 32.0,
  high_freq_factor: 4.0,
  low_freq_factor: 1.0,
  original_max_position_embeddings: 8192,
  rope_type: "llama3",
};

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
      ...TINY_LLAMA_SHAPE,
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
  // Gemma 2: local (window 16, so short prompts already pass it) and global layers,
  // soft-caps low enough to bend these small logits.
  "tiny-gemma2": {
    architecture: "gemma2",
    dtype: "f32",
    tokenizer: "none",
    config: {
      vocab_size: 1000,
      hidden_size: 64,
      intermediate_size: 256,
      num_hidden_layers: 4,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 32,
      query_pre_attn_scalar: 32,
      sliding_window: 16,
      attn_logit_softcapping: 20.0,
      final_logit_softcapping: 15.0,
    },
  },
  // Gemma 3 text with the Gemma 3 tokenizer: QK-norm, 5 local : 1 global (layer 6
  // local again), linear rope scaling on the global layers.
  "tiny-gemma3": {
    architecture: "gemma3_text",
    dtype: "f32",
    tokenizer: "gemma",
    config: {
      hidden_size: 64,
      intermediate_size: 256,
      num_hidden_layers: 7,
      num_attention_heads: 4,
      num_key_value_heads: 1,
      head_dim: 32,
      query_pre_attn_scalar: 32,
      sliding_window: 16,
      rope_scaling: { factor: 8.0, rope_type: "linear" },
    },
  },
  // Qwen3: QK-norm, no biases, head_dim 32 with a hidden size of 64.
  "tiny-qwen3": {
    architecture: "qwen3",
    dtype: "f32",
    tokenizer: "none",
    config: {
      vocab_size: 1000,
      hidden_size: 64,
      intermediate_size: 192,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 32,
    },
  },
  // Llama 3.2: tied embeddings, llama3 rope scaling (factor 32) as the 1B and 3B have it.
  "tiny-llama3.2": {
    architecture: "llama",
    dtype: "f32",
    tokenizer: "none",
    config: {
      ...TINY_LLAMA_SHAPE,
      rope_scaling: LLAMA32_ROPE,
      tie_word_embeddings: true,
    },
  },
  // Full-size shapes of published models (random weights). The Gemma ones carry the
  // bundled Gemma 3 tokenizer, whose 262,145 tokens stand in for Gemma 2's 256,000;
  // Gemma 3 4B/12B keep their 262,208-row embedding.
  "gemma2-2b": {
    architecture: "gemma2",
    dtype: "bf16",
    tokenizer: "gemma",
    config: {
      hidden_size: 2304,
      intermediate_size: 9216,
      num_hidden_layers: 26,
      num_attention_heads: 8,
      num_key_value_heads: 4,
      head_dim: 256,
    },
  },
  "gemma2-9b": {
    architecture: "gemma2",
    dtype: "bf16",
    tokenizer: "gemma",
    config: {
      hidden_size: 3584,
      intermediate_size: 14336,
      num_hidden_layers: 42,
      num_attention_heads: 16,
      num_key_value_heads: 8,
      head_dim: 256,
    },
  },
  "gemma3-1b": {
    architecture: "gemma3_text",
    dtype: "bf16",
    tokenizer: "gemma",
    config: {
      hidden_size: 1152,
      intermediate_size: 6912,
      num_hidden_layers: 26,
      num_attention_heads: 4,
      num_key_value_heads: 1,
      head_dim: 256,
      max_position_embeddings: 32768,
      sliding_window: 512,
    },
  },
  "gemma3-4b": {
    architecture: "gemma3_text",
    dtype: "bf16",
    tokenizer: "gemma",
    config: {
      vocab_size: 262208,
      hidden_size: 2560,
      intermediate_size: 10240,
      num_hidden_layers: 34,
      num_attention_heads: 8,
      num_key_value_heads: 4,
      head_dim: 256,
      sliding_window: 1024,
      rope_scaling: { factor: 8.0, rope_type: "linear" },
    },
  },
  "gemma3-12b": {
    architecture: "gemma3_text",
    dtype: "bf16",
    tokenizer: "gemma",
    config: {
      vocab_size: 262208,
      hidden_size: 3840,
      intermediate_size: 15360,
      num_hidden_layers: 48,
      num_attention_heads: 16,
      num_key_value_heads: 8,
      head_dim: 256,
      sliding_window: 1024,
      rope_scaling: { factor: 8.0, rope_type: "linear" },
    },
  },
  "qwen3-8b": {
    architecture: "qwen3",
    dtype: "bf16",
    tokenizer: "none",
    config: {
      vocab_size: 151936,
      hidden_size: 4096,
      intermediate_size: 12288,
      num_hidden_layers: 36,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      head_dim: 128,
      bos_token_id: 151643,
      eos_token_id: 151645,
    },
  },
  "llama3.2-3b": {
    architecture: "llama",
    dtype: "bf16",
    tokenizer: "none",
    config: {
      vocab_size: 128256,
      hidden_size: 3072,
      intermediate_size: 8192,
      num_hidden_layers: 28,
      num_attention_heads: 24,
      num_key_value_heads: 8,
      head_dim: 128,
      max_position_embeddings: 131072,
      rms_norm_eps: 1e-5,
      rope_theta: 500000.0,
      rope_scaling: LLAMA32_ROPE,
      tie_word_embeddings: true,
      bos_token_id: 128000,
      eos_token_id: 128001,
    },
  },
};
