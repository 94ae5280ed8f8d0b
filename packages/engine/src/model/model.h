// A decoder-only transformer in Hugging Face layout, written once over the Backend
// ops. Gemma 1/2/3 (text), the Llama family (Llama 2/3/3.1/3.2, Mistral) and Qwen2/3
// are the same graph with different switches in ModelConfig.
//
// Contract with the runtime (src/runtime): the runtime owns scheduling and the
// block manager; it builds a StepBatch, uploads it with Backend::upload_step and
// calls Model::forward, which writes this step's K/V into the paged cache and
// returns the logits of the step's logit rows.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "batchgen/backend.h"
#include "quant/quant_hf.h"

namespace bg {

struct RopeScaling {
  std::string type;                   // "" (none), "llama3", "linear"
  float factor = 1.0f;
  float low_freq_factor = 1.0f;       // llama3
  float high_freq_factor = 4.0f;      // llama3
  int32_t original_max_position_embeddings = 8192;  // llama3
};

struct ModelConfig {
  std::string architecture;           // config.json "architectures"[0]
  // "gemma" | "gemma2" | "gemma3_text" | "gemma3" | "llama" | "mistral" | "qwen2" | "qwen3";
  // "gemma3" is a Gemma3ForConditionalGeneration checkpoint, of which the text model runs.
  std::string model_type;
  int32_t vocab_size = 0;
  int32_t hidden_size = 0;
  int32_t intermediate_size = 0;
  int32_t num_layers = 0;
  int32_t num_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  float rms_norm_eps = 1e-6f;
  float rope_theta = 10000.0f;         // global (full-attention) layers
  RopeScaling rope_scaling;
  // Sliding-window layers' rotary embedding where it differs (gemma3:
  // rope_local_base_freq, no scaling); rope_local_theta 0 = the same as the global one.
  float rope_local_theta = 0.0f;
  RopeScaling rope_local_scaling;
  int32_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  bool attention_bias = false;        // q/k/v biases (qwen2 always; llama/gemma when attention_bias)
  bool attention_out_bias = false;    // o_proj bias (llama/gemma attention_bias; never qwen2)
  Activation activation = Activation::silu;
  float norm_weight_offset = 0.0f;    // gemma: 1 (weights stored as w, applied as 1 + w)
  bool scale_embeddings = false;      // gemma: embeddings * sqrt(hidden_size)
  std::vector<int32_t> eos_token_ids;
  int32_t bos_token_id = -1;
  // Sliding-window attention: the config's window (0 = none) and, per layer, the window
  // that layer attends over (0 = full attention). A query at position p of a layer with
  // window W sees keys p - W < j <= p (transformers' sliding_window_overlay). Mistral
  // windows every layer; Gemma 2 alternates local and global layers, Gemma 3 has five
  // local to one global (config.json "layer_types"). The block manager may drop a
  // sequence's KV blocks that lie wholly before every layer's window.
  int32_t sliding_window = 0;
  std::vector<int32_t> layer_windows;  // [num_layers]
  // Gemma 2/3: RMSNorm on the attention and MLP outputs before each residual add
  // (post_attention_layernorm, post_feedforward_layernorm) and pre_feedforward_layernorm
  // before the MLP; without it post_attention_layernorm is the MLP's input norm.
  bool sandwich_norms = false;
  // Qwen3, Gemma 3: RMSNorm over each q and k head (q_norm, k_norm) before the rotary
  // embedding, with norm_weight_offset like every other norm of the model.
  bool qk_norm = false;
  // Attention scores are scaled by query_pre_attn_scalar^-0.5 (gemma2/3), else head_dim^-0.5.
  float query_pre_attn_scalar = 0.0f;
  // Soft-capping x -> tanh(x / cap) * cap (0 = none): of the attention scores after
  // scaling (gemma2 attn_logit_softcapping) and of the final logits (final_logit_softcapping).
  float attn_logit_softcap = 0.0f;
  float final_logit_softcap = 0.0f;
  std::string torch_dtype;            // as stored
  QuantScheme quant;                  // config.json "quantization_config" (none when absent)

  HeadLayout heads() const { return HeadLayout{num_heads, num_kv_heads, head_dim}; }
  // How many of a sequence's latest positions some layer may still read: the largest
  // window over the layers, 0 (unbounded) when any layer attends to the full context.
  int32_t attention_reach() const;
};

// Reads and validates config.json (and generation_config.json for EOS ids when present).
// Throws EngineError(model_load) for a missing/unreadable file or field,
// EngineError(unsupported) naming an architecture that is not supported.
ModelConfig model_config_load(const std::string& model_dir);
// The same from a parsed config.json (`path` names it in messages) and, when not
// null, generation_config.json (named `gen_path`): how a GGUF file's metadata,
// written as a config.json, becomes a ModelConfig (model/gguf.h).
class Json;
ModelConfig model_config_parse(const Json& config, const std::string& path, const Json* generation_config,
                               const std::string& gen_path);

// The rotary embedding of a config: inv_freq computed as transformers computes it
// (f32, same operation order), including "linear" and "llama3" scaling. `local`
// picks the sliding-window layers' embedding (the same unless rope_local_theta is set).
RopeConfig rope_config_make(const ModelConfig& config, bool local = false);

struct ModelLoadOptions {
  // "fp8": every decoder linear weight (q/k/v/o, gate/up/down) the checkpoint holds
  // in BF16, F16 or F32 is quantized at load to fp8 e4m3 with per-channel scales
  // (quant_fp8_per_channel); the embedding and the head keep their dtype, weights
  // already quantized keep their format. "" (default): weights as stored.
  std::string quantize;
};

class Model {
 public:
  // Loads config + every safetensors file (single or index-sharded) into the backend.
  // Quantized checkpoints (quant/quant_hf.h, GGUF Q4_0 / Q4_K) become QuantWeights:
  // the backend runs them (Backend::quant_upload) or they are dequantized at load.
  // Throws EngineError(model_load) naming the file and tensor at fault.
  // The model keeps a reference to `backend` and frees its tensors through it, so
  // the backend must outlive the model.
  static std::unique_ptr<Model> load(const std::string& model_dir, Backend& backend,
                                     const ModelLoadOptions& options = {});
  virtual ~Model() = default;

  virtual const ModelConfig& config() const = 0;
  virtual int64_t weight_bytes() const = 0;
  virtual int64_t weight_params() const = 0;
  // How the weights are held, for reports: each storage with its share of the
  // parameters ("int4 g64 (AWQ int4 g64) 87.5%, f32 12.5%"), then how quantized
  // ones run ("held packed, dequantized per 16-row block in each product (cpu)").
  virtual std::string weight_format() const = 0;
  // Bytes one KV block takes over all layers (K and V).
  virtual int64_t kv_block_bytes(int32_t block_size) const = 0;
  // Allocates the paged KV cache: num_blocks blocks of block_size slots per layer.
  virtual void kv_cache_alloc(int64_t num_blocks, int32_t block_size) = 0;
  // Allocates activation buffers for steps of up to max_tokens tokens and
  // max_seqs sequences (which bounds the logit rows) and contexts up to max_context.
  virtual void reserve(int32_t max_tokens, int32_t max_seqs, int32_t max_context) = 0;
  // LoRA adapters (model/lora.h): the stack whose slots the step's LoRA segments
  // name, or null for none. The stack must outlive its use by forward().
  virtual void lora_attach(class LoraStack* stack) = 0;
  // One step. Returns f32 logits [step.num_logit_rows, vocab_size] in backend
  // memory, valid until the next forward.
  virtual Tensor forward(const StepTensors& step) = 0;
  // The final-norm hidden states [step.num_tokens, hidden_size] of the last
  // forward (every token's; activation dtype), valid until the next forward.
  virtual Tensor hidden_states(int32_t num_tokens) const = 0;
};

}  // namespace bg
