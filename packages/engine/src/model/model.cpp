// The decoder forward pass, written once over the Backend ops, and the loading of
// Hugging Face weights into the fused layout it uses:
//   qkv     [q_width + 2 kv_width, hidden]  rows q_proj; k_proj; v_proj
//   gate_up [2 intermediate, hidden]        rows gate_proj; up_proj
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include "backend/dtype_convert.h"
#include "model/gguf.h"
#include "model/lora.h"
#include "model/model.h"
#include "model/safetensors.h"

namespace bg {
namespace {

[[noreturn]] void load_error(const std::string& msg) { throw EngineError(ErrorCode::model_load, msg); }

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// The value x takes after a cast to dtype (what a bf16 backend computes with).
float round_to_dtype(float x, DType dtype) {
  return dtype == DType::bf16 ? bf16_to_f32(f32_to_bf16(x)) : x;
}

// A linear layer's weight: a backend-held quantized weight when the backend runs
// its format, else a dense tensor (the checkpoint's, or a quantized one dequantized at load).
struct LinearWeight {
  Tensor dense;
  std::unique_ptr<QuantLinear> quant;
};

struct LayerWeights {
  Tensor input_norm, post_norm;  // [1, hidden]
  Tensor pre_ff_norm, post_ff_norm;  // [1, hidden], sandwich norms only
  Tensor q_norm, k_norm;         // [1, head_dim], QK-norm only
  LinearWeight qkv;              // [qkv_width, hidden]
  Tensor qkv_bias;               // [1, qkv_width] (optional)
  LinearWeight o;                // [hidden, q_width]
  Tensor o_bias;                 // [1, hidden] (optional)
  LinearWeight gate_up, down;    // [2I, hidden], [hidden, I]
};

std::string quant_label(const QuantWeight& w) {
  const std::string group = w.group_size == w.cols ? " per-channel" : " g" + std::to_string(w.group_size);
  return std::string(quant_format_name(w.format)) + group + " (" + w.source + ")";
}

// How the weights are stored, for ModelInfo and the logs.
struct WeightReport {
  std::vector<std::pair<std::string, int64_t>> parts;  // storage -> parameters
  bool held_quantized = false;        // some weight runs through Backend::linear_quant
  bool dequantized_at_load = false;   // some quantized weight became a dense tensor
  std::string backend, dense_dtype;

  void add(const std::string& label, int64_t params) {
    for (auto& [l, n] : parts) {
      if (l == label) {
        n += params;
        return;
      }
    }
    parts.emplace_back(label, params);
  }

  std::string describe(int64_t total) const {
    std::vector<std::pair<std::string, int64_t>> all = parts;
    int64_t linear = 0;
    for (const auto& p : parts) linear += p.second;
    if (total > linear) all.emplace_back(dense_dtype + " (embeddings, norms, biases)", total - linear);
    std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    std::string s;
    for (const auto& [label, n] : all) {
      char pct[32];
      std::snprintf(pct, sizeof pct, " %.1f%%", total > 0 ? 100.0 * double(n) / double(total) : 0.0);
      s += (s.empty() ? "" : ", ") + label + pct;
    }
    if (held_quantized) s += "; quantized weights held packed, multiplied by the " + backend + " backend's quantized product";
    if (dequantized_at_load)
      s += "; quantized weights dequantized to " + dense_dtype + " at load on " + backend + " (not the fast path)";
    return s;
  }
};

// One part of a fused linear: the checkpoint's module name and its rows.
struct LinearPart {
  std::string prefix;  // "model.layers.0.self_attn.q_proj"
  int64_t rows;
};

class TransformerModel final : public Model {
 public:
  TransformerModel(ModelConfig config, Backend& backend, ModelLoadOptions options)
      : config_(std::move(config)), backend_(backend), heads_(config_.heads()), options_(std::move(options)) {
    rope_ = rope_config_make(config_);
    rope_local_ = rope_config_make(config_, /*local=*/true);
    const double pre_attn = config_.query_pre_attn_scalar > 0 ? config_.query_pre_attn_scalar : config_.head_dim;
    attn_.resize(size_t(config_.num_layers));
    for (size_t l = 0; l < attn_.size(); ++l) {
      attn_[l].scale = float(std::pow(pre_attn, -0.5));
      attn_[l].window = l < config_.layer_windows.size() ? config_.layer_windows[l] : 0;
      attn_[l].softcap = config_.attn_logit_softcap;
    }
    // transformers: hidden * tensor(sqrt(hidden)).to(activation dtype).
    embed_scale_ = config_.scale_embeddings
                       ? round_to_dtype(float(std::sqrt(double(config_.hidden_size))), backend_.act_dtype())
                       : 1.0f;
  }

  ~TransformerModel() override {
    for (Tensor* t : owned_) {
      if (t->data) backend_.free(*t);
    }
    layers_.clear();  // quantized weights free their memory through the backend
    lm_head_.quant.reset();
    free_kv();
    free_activations();
  }

  // GGUF Q4_0 / Q4_K linear weights already repacked into int4 (gguf_weights).
  void set_int4(std::map<std::string, QuantWeight> int4) { int4_ = std::move(int4); }

  void load_weights(const SafetensorsSet& st) {
    const ModelConfig& c = config_;
    const int64_t H = c.hidden_size, I = c.intermediate_size;
    const int64_t qw = heads_.q_width(), kw = heads_.kv_width(), qkvw = heads_.qkv_width();
    const int64_t hd = c.head_dim;

    // The decoder's tensors sit under "model." in a causal-LM checkpoint; a multimodal
    // Gemma 3 keeps them under "model.language_model." (transformers 5) or
    // "language_model.model." (the Hub's checkpoints), its head beside them.
    std::string m = "model.", head = "lm_head.weight";
    for (const char* prefix : {"model.", "model.language_model.", "language_model.model."}) {
      if (st.find(std::string(prefix) + "embed_tokens.weight")) {
        m = prefix;
        break;
      }
    }
    if (m == "language_model.model.") head = "language_model.lm_head.weight";
    load_into(st, m + "embed_tokens.weight", {c.vocab_size, H}, embed_, 0, c.vocab_size);
    // The layer count sizes host structures before any layer is read: make sure the
    // weights have that many layers first.
    const std::string last = m + "layers." + std::to_string(c.num_layers - 1) + ".input_layernorm.weight";
    if (!st.find(last))
      load_error("config.json says num_hidden_layers = " + std::to_string(c.num_layers) + " but tensor '" + last +
                 "' is missing from the weights");
    layers_.resize(size_t(c.num_layers));
    for (int32_t l = 0; l < c.num_layers; ++l) {
      LayerWeights& L = layers_[size_t(l)];
      const std::string p = m + "layers." + std::to_string(l) + ".";
      load_into(st, p + "input_layernorm.weight", {H}, L.input_norm, 0, 1);
      load_into(st, p + "post_attention_layernorm.weight", {H}, L.post_norm, 0, 1);
      if (c.sandwich_norms) {
        load_into(st, p + "pre_feedforward_layernorm.weight", {H}, L.pre_ff_norm, 0, 1);
        load_into(st, p + "post_feedforward_layernorm.weight", {H}, L.post_ff_norm, 0, 1);
      }
      if (c.qk_norm) {
        load_into(st, p + "self_attn.q_norm.weight", {hd}, L.q_norm, 0, 1);
        load_into(st, p + "self_attn.k_norm.weight", {hd}, L.k_norm, 0, 1);
      }
      load_linear(st, {{p + "self_attn.q_proj", qw}, {p + "self_attn.k_proj", kw}, {p + "self_attn.v_proj", kw}}, H,
                  L.qkv);
      if (c.attention_bias) {
        std::vector<float> b;
        append_f32(st, p + "self_attn.q_proj.bias", qw, b);
        append_f32(st, p + "self_attn.k_proj.bias", kw, b);
        append_f32(st, p + "self_attn.v_proj.bias", kw, b);
        alloc_weight(L.qkv_bias, 1, qkvw);
        backend_.upload(L.qkv_bias, 0, b.data(), DType::f32, 1);
      }
      load_linear(st, {{p + "self_attn.o_proj", H}}, qw, L.o);
      if (c.attention_out_bias) load_into(st, p + "self_attn.o_proj.bias", {H}, L.o_bias, 0, 1);
      load_linear(st, {{p + "mlp.gate_proj", I}, {p + "mlp.up_proj", I}}, H, L.gate_up);
      load_linear(st, {{p + "mlp.down_proj", H}}, I, L.down);
    }
    load_into(st, m + "norm.weight", {H}, final_norm_, 0, 1);
    // A tied head is the embedding table; a stored lm_head.weight is then ignored,
    // as transformers ties over it.
    // --quantize leaves the head in its dtype (as vLLM's online fp8 does); a
    // checkpoint that quantized it is read as it is.
    if (!c.tie_word_embeddings)
      load_linear(st, {{head.substr(0, head.size() - 7), c.vocab_size}}, H, lm_head_, /*may_quantize=*/false);
  }

  const ModelConfig& config() const override { return config_; }
  int64_t weight_bytes() const override { return weight_bytes_; }
  int64_t weight_params() const override { return weight_params_; }
  std::string weight_format() const override {
    WeightReport r = weight_report_;
    r.backend = backend_.info().name;
    r.dense_dtype = dtype_name(backend_.weight_dtype());
    return r.describe(weight_params_);
  }

  int64_t kv_block_bytes(int32_t block_size) const override {
    return 2 * int64_t(config_.num_layers) * block_size * heads_.kv_width() *
           int64_t(dtype_size(backend_.act_dtype()));
  }

  void kv_cache_alloc(int64_t num_blocks, int32_t block_size) override {
    if (num_blocks <= 0 || block_size <= 0)
      throw EngineError(ErrorCode::invalid_argument, "kv cache needs at least one block of at least one slot");
    free_kv();
    kv_.resize(size_t(config_.num_layers));
    for (KvLayer& layer : kv_) {
      layer.k = backend_.alloc(backend_.act_dtype(), num_blocks * block_size, heads_.kv_width());
      layer.v = backend_.alloc(backend_.act_dtype(), num_blocks * block_size, heads_.kv_width());
      layer.block_size = block_size;
    }
  }

  void reserve(int32_t max_tokens, int32_t max_seqs, int32_t max_context) override {
    if (max_tokens <= 0 || max_seqs <= 0 || max_context <= 0)
      throw EngineError(ErrorCode::invalid_argument, "reserve needs positive max_tokens, max_seqs and max_context");
    free_activations();
    const DType act = backend_.act_dtype();
    const int64_t T = max_tokens;
    // The residual stream is f32 on every backend: kept in bf16, its two roundings
    // per layer were the largest part of the CUDA engine's logits error (docs/benchmarks.md).
    act_.residual = backend_.alloc(DType::f32, T, config_.hidden_size);
    act_.normed = backend_.alloc(act, T, config_.hidden_size);
    act_.proj = backend_.alloc(act, T, config_.hidden_size);
    act_.qkv = backend_.alloc(act, T, heads_.qkv_width());
    act_.attn = backend_.alloc(act, T, heads_.q_width());
    act_.gate_up = backend_.alloc(act, T, 2 * int64_t(config_.intermediate_size));
    act_.mlp = backend_.alloc(act, T, config_.intermediate_size);
    max_tokens_ = max_tokens;
    alloc_logits(std::min(max_seqs, max_tokens));
    backend_.reserve_scratch(max_tokens, max_seqs, max_context, heads_);
  }

  void lora_attach(LoraStack* stack) override { lora_ = stack; }

  Tensor forward(const StepTensors& step) override {
    const int32_t T = step.num_tokens, R = step.num_logit_rows;
    if (T <= 0) throw EngineError(ErrorCode::internal, "forward of an empty step");
    if (T > max_tokens_)
      throw EngineError(ErrorCode::internal, "forward of " + std::to_string(T) + " tokens, reserved " +
                                                 std::to_string(max_tokens_));
    if (kv_.empty()) throw EngineError(ErrorCode::internal, "forward before kv_cache_alloc");
    // Steps usually want one logit row per sequence; a prompt-logits check wants
    // every row, and only then does the buffer grow.
    if (R > logit_rows_) alloc_logits(R);

    const ModelConfig& c = config_;
    Backend& b = backend_;
    Tensor residual = act_.residual.row_slice(0, T);
    Tensor normed = act_.normed.row_slice(0, T);
    Tensor proj = act_.proj.row_slice(0, T);
    Tensor qkv = act_.qkv.row_slice(0, T);
    Tensor attn = act_.attn.row_slice(0, T);
    Tensor gate_up = act_.gate_up.row_slice(0, T);
    Tensor mlp = act_.mlp.row_slice(0, T);
    const float eps = c.rms_norm_eps, off = c.norm_weight_offset;

    b.embed(embed_, step, embed_scale_, residual);
    for (int32_t l = 0; l < c.num_layers; ++l) {
      LayerWeights& L = layers_[size_t(l)];
      if (l == 0) {
        b.rms_norm(residual, L.input_norm, eps, off, normed);
      } else {
        b.add_rms_norm(residual, proj, L.input_norm, eps, off, normed);  // + previous MLP output
      }
      const AttentionParams& ap = attn_[size_t(l)];
      linear(normed, L.qkv, c.attention_bias ? &L.qkv_bias : nullptr, qkv, LinearRole::qkv);
      if (lora_) lora_->apply(step, l, LoraStack::Site::qkv, normed, qkv);
      if (c.qk_norm) b.head_rms_norm(qkv, heads_, L.q_norm, L.k_norm, eps, off);
      b.rope(qkv, step, heads_, ap.window > 0 ? rope_local_ : rope_);
      b.kv_write(qkv, step, heads_, kv_[size_t(l)]);
      b.attention(qkv, step, heads_, kv_[size_t(l)], ap, attn);
      linear(attn, L.o, c.attention_out_bias ? &L.o_bias : nullptr, proj, LinearRole::o);
      if (lora_) lora_->apply(step, l, LoraStack::Site::o, attn, proj);
      if (c.sandwich_norms) {
        // Gemma 2/3: the attention output is normed before the residual add, and the
        // MLP has a norm of its own on each side.
        b.rms_norm(proj, L.post_norm, eps, off, proj);
        b.add_rms_norm(residual, proj, L.pre_ff_norm, eps, off, normed);
      } else {
        b.add_rms_norm(residual, proj, L.post_norm, eps, off, normed);
      }
      linear(normed, L.gate_up, nullptr, gate_up, LinearRole::gate_up);
      if (lora_) lora_->apply(step, l, LoraStack::Site::gate_up, normed, gate_up);
      b.gated_activation(gate_up, c.activation, mlp);
      linear(mlp, L.down, nullptr, proj, LinearRole::down);
      if (lora_) lora_->apply(step, l, LoraStack::Site::down, mlp, proj);
      if (c.sandwich_norms) b.rms_norm(proj, L.post_ff_norm, eps, off, proj);
    }
    b.add_rms_norm(residual, proj, final_norm_, eps, off, normed);
    Tensor rows = act_.logit_hidden.row_slice(0, R);
    Tensor logits = logits_.row_slice(0, R);
    if (R == 0) return logits;
    b.gather_rows(normed, step, rows);
    if (c.tie_word_embeddings) {
      b.linear(rows, embed_, nullptr, logits, LinearRole::lm_head);
    } else {
      linear(rows, lm_head_, nullptr, logits, LinearRole::lm_head);
    }
    if (c.final_logit_softcap > 0) b.softcap(logits, c.final_logit_softcap);
    return logits;
  }

  Tensor hidden_states(int32_t num_tokens) const override { return act_.normed.row_slice(0, num_tokens); }

 private:
  struct Activations {
    Tensor residual, normed, proj, qkv, attn, gate_up, mlp, logit_hidden;
  };

  void alloc_weight(Tensor& t, int64_t rows, int64_t cols) {
    t = backend_.alloc(backend_.weight_dtype(), rows, cols);
    owned_.push_back(&t);
    weight_bytes_ += int64_t(t.bytes());
    weight_params_ += rows * cols;
  }

  void linear(const Tensor& x, const LinearWeight& w, const Tensor* bias, Tensor& out, LinearRole role) {
    if (w.quant) {
      backend_.linear_quant(x, *w.quant, bias, out, role);
    } else {
      backend_.linear(x, w.dense, bias, out, role);
    }
  }

  // The quantized form of part `prefix` ([rows, cols]) when there is one: GGUF's
  // int4, the checkpoint's quantization_config, or (when may_quantize) --quantize
  // fp8 of a float weight.
  std::optional<QuantWeight> quantized_part(const SafetensorsSet& st, const std::string& prefix, int64_t rows,
                                            int64_t cols, bool may_quantize) {
    auto it = int4_.find(prefix + ".weight");
    if (it != int4_.end()) {
      if (it->second.rows != rows || it->second.cols != cols)
        load_error("GGUF tensor '" + prefix + ".weight' has shape [" + std::to_string(it->second.rows) + ", " +
                   std::to_string(it->second.cols) + "], but the config implies [" + std::to_string(rows) + ", " +
                   std::to_string(cols) + "]");
      return std::move(it->second);
    }
    if (std::optional<QuantWeight> q = quant_linear_load(st, config_.quant, prefix, rows, cols)) return q;
    if (options_.quantize != "fp8" || !may_quantize) return std::nullopt;
    const SafetensorsTensor& t = checked(st, prefix + ".weight", {rows, cols});
    if (t.st_dtype != "BF16" && t.st_dtype != "F16" && t.st_dtype != "F32") return std::nullopt;
    const std::vector<float> w = quant_floats(t);
    return quant_fp8_per_channel(w.data(), rows, cols);
  }

  // Loads the linear whose rows are `parts` stacked (q; k; v or gate; up), each
  // [rows, cols]. All parts quantized: one QuantWeight the backend runs, or
  // dequantizes at load when it cannot. Otherwise a dense weight, with any
  // quantized part dequantized into it (GGUF mixes Q4_K and Q6_K within q/k/v).
  void load_linear(const SafetensorsSet& st, const std::vector<LinearPart>& parts, int64_t cols, LinearWeight& out,
                   bool may_quantize = true) {
    std::vector<std::optional<QuantWeight>> q;
    int64_t rows = 0;
    bool all = true;
    for (const LinearPart& part : parts) {
      q.push_back(quantized_part(st, part.prefix, part.rows, cols, may_quantize));
      all = all && q.back();
      rows += part.rows;
    }
    if (all) {
      QuantWeight w = std::move(*q[0]);
      for (size_t i = 1; i < q.size(); ++i) quant_append_rows(w, *q[i], parts[0].prefix + " and " + parts[i].prefix);
      out.quant = backend_.quant_upload(w);
      if (out.quant) {
        weight_report_.held_quantized = true;
        weight_report_.add(quant_label(w), rows * cols);
        weight_bytes_ += out.quant->bytes();
        weight_params_ += rows * cols;
        return;
      }
      weight_report_.add(quant_label(w), rows * cols);
      weight_report_.dequantized_at_load = true;
      alloc_weight(out.dense, rows, cols);
      upload_dequantized(w, out.dense, 0);
      return;
    }
    alloc_weight(out.dense, rows, cols);
    int64_t row0 = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (q[i]) {
        weight_report_.add(quant_label(*q[i]) + ", dequantized: fused with an unquantized part", parts[i].rows * cols);
        upload_dequantized(*q[i], out.dense, row0);
      } else {
        weight_report_.add(st.get(parts[i].prefix + ".weight").st_dtype + " as " + dtype_name(backend_.weight_dtype()),
                           parts[i].rows * cols);
        load_into(st, parts[i].prefix + ".weight", {parts[i].rows, cols}, out.dense, row0, parts[i].rows);
      }
      row0 += parts[i].rows;
    }
  }

  // Rows of w dequantized into dst from dst_row0 on, a slice at a time.
  void upload_dequantized(const QuantWeight& w, Tensor& dst, int64_t dst_row0) {
    const int64_t chunk = std::max<int64_t>(1, (int64_t(1) << 22) / w.cols);
    std::vector<float> buf(size_t(std::min(chunk, w.rows) * w.cols));
    for (int64_t r = 0; r < w.rows; r += chunk) {
      const int64_t n = std::min(chunk, w.rows - r);
      quant_dequantize_rows(w, r, n, buf.data());
      backend_.upload(dst, dst_row0 + r, buf.data(), DType::f32, n);
    }
  }

  const SafetensorsTensor& checked(const SafetensorsSet& st, const std::string& name,
                                   const std::vector<int64_t>& shape) {
    const SafetensorsTensor& t = st.get(name);
    if (!t.supported)
      load_error(t.file + ": tensor '" + name + "' has dtype " + t.st_dtype +
                 "; weights must be BF16, F16 or F32");
    if (t.shape != shape)
      load_error(t.file + ": tensor '" + name + "' has shape " + shape_string(t.shape) + ", but config.json implies " +
                 shape_string(shape));
    return t;
  }

  // Uploads tensor `name` (of `shape`) into rows [row0, row0 + rows) of dst,
  // allocating dst first when it is not allocated yet ([rows, last dim]).
  void load_into(const SafetensorsSet& st, const std::string& name, const std::vector<int64_t>& shape,
                 Tensor& dst, int64_t row0, int64_t rows) {
    const SafetensorsTensor& t = checked(st, name, shape);
    if (!dst.data) alloc_weight(dst, rows, shape.back());
    backend_.upload(dst, row0, t.data, t.dtype, rows);
  }

  void append_f32(const SafetensorsSet& st, const std::string& name, int64_t n, std::vector<float>& out) {
    const SafetensorsTensor& t = checked(st, name, {n});
    const char* p = static_cast<const char*>(t.data);
    for (int64_t i = 0; i < n; ++i) {
      if (t.dtype == DType::f32) {
        float f;
        std::memcpy(&f, p + 4 * i, 4);
        out.push_back(f);
      } else {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out.push_back(t.dtype == DType::bf16 ? bf16_to_f32(h) : f16_to_f32(h));
      }
    }
  }

  void alloc_logits(int32_t rows) {
    if (logits_.data) backend_.free(logits_);
    if (act_.logit_hidden.data) backend_.free(act_.logit_hidden);
    logits_ = backend_.alloc(DType::f32, rows, config_.vocab_size);
    act_.logit_hidden = backend_.alloc(backend_.act_dtype(), rows, config_.hidden_size);
    logit_rows_ = rows;
  }

  void free_kv() {
    for (KvLayer& layer : kv_) {
      if (layer.k.data) backend_.free(layer.k);
      if (layer.v.data) backend_.free(layer.v);
    }
    kv_.clear();
  }

  void free_activations() {
    for (Tensor* t : {&act_.residual, &act_.normed, &act_.proj, &act_.qkv, &act_.attn, &act_.gate_up, &act_.mlp,
                      &act_.logit_hidden, &logits_}) {
      if (t->data) backend_.free(*t);
    }
    max_tokens_ = 0;
    logit_rows_ = 0;
  }

  ModelConfig config_;
  Backend& backend_;
  HeadLayout heads_;
  RopeConfig rope_, rope_local_;        // global layers', sliding-window layers'
  std::vector<AttentionParams> attn_;   // per layer
  float embed_scale_ = 1.0f;

  Tensor embed_, final_norm_;
  LinearWeight lm_head_;
  std::vector<LayerWeights> layers_;
  std::vector<Tensor*> owned_;  // every weight tensor, for the destructor
  int64_t weight_bytes_ = 0;
  int64_t weight_params_ = 0;
  ModelLoadOptions options_;
  std::map<std::string, QuantWeight> int4_;
  WeightReport weight_report_;

  std::vector<KvLayer> kv_;
  Activations act_;
  Tensor logits_;
  int32_t max_tokens_ = 0;
  int32_t logit_rows_ = 0;
  LoraStack* lora_ = nullptr;
};

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& model_dir, Backend& backend, const ModelLoadOptions& options) {
  if (!options.quantize.empty() && options.quantize != "fp8")
    throw EngineError(ErrorCode::invalid_argument,
                      "quantize \"" + options.quantize + "\" is not supported (\"fp8\" is, or none)");
  // A GGUF file (or a directory holding one instead of config.json) yields the
  // same config and Hugging Face-named tensors (model/gguf.h).
  const std::string gguf = gguf_find(model_dir);
  std::shared_ptr<GgufFile> file = gguf.empty() ? nullptr : std::shared_ptr<GgufFile>(GgufFile::open(gguf));
  ModelConfig config = file ? gguf_model_config(*file) : model_config_load(model_dir);
  std::map<std::string, QuantWeight> int4;
  SafetensorsSet weights = file ? gguf_weights(file, &int4) : SafetensorsSet::open_dir(model_dir);
  auto model = std::make_unique<TransformerModel>(std::move(config), backend, options);
  model->set_int4(std::move(int4));
  model->load_weights(weights);
  return model;
}

}  // namespace bg
