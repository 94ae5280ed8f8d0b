// A GGUF file as a model: its metadata written as the config.json transformers'
// GGUF loader would make (keys per architecture, llama.cpp's hard-coded Gemma
// choices made explicit), and its tensors under Hugging Face names with what
// llama.cpp's converter (convert_hf_to_gguf.py) changed undone.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "model/gguf.h"
#include "model/json.h"

namespace bg {
namespace {

[[noreturn]] void load_error(const std::string& msg) { throw EngineError(ErrorCode::model_load, msg); }
[[noreturn]] void unsupported(const std::string& msg) { throw EngineError(ErrorCode::unsupported, msg); }

struct GgufArch {
  const char* gguf;        // general.architecture
  const char* hf_arch;     // config.json "architectures"[0]
  const char* model_type;  // config.json "model_type"
};
constexpr GgufArch kArchs[] = {
    {"llama", "LlamaForCausalLM", "llama"},       {"qwen2", "Qwen2ForCausalLM", "qwen2"},
    {"qwen3", "Qwen3ForCausalLM", "qwen3"},       {"gemma", "GemmaForCausalLM", "gemma"},
    {"gemma2", "Gemma2ForCausalLM", "gemma2"},    {"gemma3", "Gemma3ForCausalLM", "gemma3_text"},
};

bool is_gemma(const std::string& arch) { return arch.rfind("gemma", 0) == 0; }

// The tokens that end a turn as well as the sequence, when the vocabulary has them
// (the ids Hugging Face generation configs list besides eos).
constexpr const char* kEndOfTurnTokens[] = {"<end_of_turn>", "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>",
                                            "<|im_end|>",    "<|endoftext|>"};

std::string num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  std::string s = buf;
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (static_cast<unsigned char>(ch) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      out += buf;
      continue;
    }
    out += ch;
  }
  return out + "\"";
}

// Typed access to the metadata with the file and key named in errors.
class Meta {
 public:
  Meta(const GgufFile& f, std::string arch) : f_(f), arch_(std::move(arch)) {}
  const GgufValue* get(const std::string& key) const { return f_.find(key); }
  const GgufValue* arch_key(const std::string& key) const { return f_.find(arch_ + "." + key); }

  int64_t integer(const std::string& key, const int64_t* fallback) const {
    const GgufValue* v = arch_key(key);
    if (!v) {
      if (fallback) return *fallback;
      load_error(f_.path() + ": GGUF metadata '" + arch_ + "." + key + "' is missing");
    }
    // Per-layer arrays (head_count_kv in some models) must be uniform to map onto one config value.
    if (v->type == GgufValue::array && !v->numbers.empty()) {
      for (double x : v->numbers) {
        if (x != v->numbers[0])
          unsupported(f_.path() + ": '" + arch_ + "." + key + "' differs between layers, which is not supported");
      }
      return int64_t(v->numbers[0]);
    }
    if (!v->is_integer()) load_error(f_.path() + ": GGUF metadata '" + arch_ + "." + key + "' must be an integer");
    return v->i;
  }
  int64_t integer(const std::string& key) const { return integer(key, nullptr); }
  int64_t integer(const std::string& key, int64_t fallback) const { return integer(key, &fallback); }

  double number(const std::string& key, double fallback) const {
    const GgufValue* v = arch_key(key);
    if (!v) return fallback;
    if (!v->is_number()) load_error(f_.path() + ": GGUF metadata '" + arch_ + "." + key + "' must be a number");
    return v->f;
  }

  std::string string(const std::string& key, const std::string& fallback) const {
    const GgufValue* v = get(key);
    return v && v->type == GgufValue::string ? v->s : fallback;
  }

  int64_t token_id(const std::string& key) const {
    const GgufValue* v = get(key);
    return v && v->is_integer() ? v->i : -1;
  }

 private:
  const GgufFile& f_;
  std::string arch_;
};

const GgufArch& arch_of(const GgufFile& f) {
  const GgufValue* a = f.find("general.architecture");
  if (!a || a->type != GgufValue::string) load_error(f.path() + ": GGUF metadata 'general.architecture' is missing");
  for (const GgufArch& x : kArchs) {
    if (a->s == x.gguf) return x;
  }
  std::string list;
  for (const GgufArch& x : kArchs) list += (list.empty() ? "" : ", ") + std::string(x.gguf);
  unsupported(f.path() + ": GGUF architecture \"" + a->s + "\" is not supported (supported: " + list + ")");
}

std::string lower(std::string s) {
  for (char& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// llama.cpp stores Llama 3.1+ rope scaling as a rope_freqs tensor of per-frequency
// divisors; the Hugging Face form is the llama3 rope type. Finds the llama3
// parameters that give exactly these divisors (Meta's are low 1, high 4, original
// context 8192, with the factor as the largest divisor), or says it cannot.
std::string llama3_rope_from_freqs(const GgufFile& f, const GgufTensor& t, int64_t dim, double base) {
  if (t.type != 0 || t.numel() != dim / 2)
    unsupported(f.path() + ": rope_freqs.weight of type " + ggml_type_name(t.type) + " and " +
                std::to_string(t.numel()) + " values cannot be read as llama3 rope scaling");
  std::vector<float> got(size_t(dim / 2));
  ggml_dequantize(0, t.data, dim / 2, got.data());
  const double factor = *std::max_element(got.begin(), got.end());
  const double low = 1, high = 4, old_len = 8192;
  for (int64_t i = 0; i < dim / 2; ++i) {
    const double freq = 1.0 / std::pow(base, double(2 * i) / double(dim));
    const double wavelen = 2 * M_PI / freq;
    double want;
    if (wavelen < old_len / high) {
      want = 1;
    } else if (wavelen > old_len / low) {
      want = factor;
    } else {
      const double smooth = (old_len / wavelen - low) / (high - low);
      want = 1 / ((1 - smooth) / factor + smooth);
    }
    if (std::fabs(want - got[size_t(i)]) > 1e-3 * want)
      unsupported(f.path() + ": rope_freqs.weight does not match llama3 rope scaling (low 1, high 4, "
                  "original context 8192); other rope factor tables are not supported");
  }
  return "{\"rope_type\": \"llama3\", \"factor\": " + num(factor) +
         ", \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}";
}

}  // namespace

std::string gguf_tensor_hf_name(const std::string& arch, const std::string& name) {
  static const std::pair<const char*, const char*> kTop[] = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
  };
  for (const auto& [g, h] : kTop) {
    if (name == g) return h;
  }
  if (name.rfind("blk.", 0) != 0) return "";
  const size_t dot = name.find('.', 4);
  if (dot == std::string::npos || dot == 4) return "";
  const std::string layer = name.substr(4, dot - 4);
  if (layer.find_first_not_of("0123456789") != std::string::npos) return "";
  std::string rest = name.substr(dot + 1);
  std::string suffix;
  for (const char* s : {".weight", ".bias"}) {
    const std::string sfx = s;
    if (rest.size() > sfx.size() && rest.compare(rest.size() - sfx.size(), sfx.size(), sfx) == 0) {
      suffix = sfx;
      rest = rest.substr(0, rest.size() - sfx.size());
    }
  }
  if (suffix.empty()) return "";
  // Gemma 2/3 have four norms a layer; in the others ffn_norm is the second of two.
  const bool four_norms = arch == "gemma2" || arch == "gemma3";
  const std::pair<const char*, const char*> kLayer[] = {
      {"attn_norm", "input_layernorm"},
      {"attn_q", "self_attn.q_proj"},
      {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},
      {"attn_output", "self_attn.o_proj"},
      {"attn_q_norm", "self_attn.q_norm"},
      {"attn_k_norm", "self_attn.k_norm"},
      {"post_attention_norm", "post_attention_layernorm"},
      {"ffn_norm", four_norms ? "pre_feedforward_layernorm" : "post_attention_layernorm"},
      {"post_ffw_norm", "post_feedforward_layernorm"},
      {"ffn_gate", "mlp.gate_proj"},
      {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"},
  };
  for (const auto& [g, h] : kLayer) {
    if (rest == g) return "model.layers." + layer + "." + h + suffix;
  }
  return "";
}

std::string gguf_config_json(const GgufFile& f) {
  const GgufArch& info = arch_of(f);
  const std::string arch = info.gguf;
  const Meta m(f, arch);
  const GgufTensor* embd = f.tensor("token_embd.weight");
  if (!embd || embd->ne.size() != 2) load_error(f.path() + ": tensor 'token_embd.weight' is missing or not 2-D");

  const int64_t hidden = m.integer("embedding_length");
  const int64_t layers = m.integer("block_count");
  const int64_t heads = m.integer("attention.head_count");
  const int64_t kv_heads = m.integer("attention.head_count_kv", heads);
  if (heads <= 0 || hidden <= 0 || layers <= 0) load_error(f.path() + ": GGUF sizes must be positive");
  const int64_t head_dim = m.integer("attention.key_length", hidden / heads);
  if (m.integer("attention.value_length", head_dim) != head_dim)
    unsupported(f.path() + ": attention.value_length differs from key_length, which is not supported");
  const int64_t rope_dim = m.integer("rope.dimension_count", head_dim);
  if (rope_dim != head_dim)
    unsupported(f.path() + ": partial rotary embeddings (rope.dimension_count " + std::to_string(rope_dim) +
                " of head_dim " + std::to_string(head_dim) + ") are not supported");
  const double rope_theta = m.number("rope.freq_base", 10000.0);

  std::string hf_arch = info.hf_arch, model_type = info.model_type;
  // As transformers' loader: llama.cpp writes Mistral as "llama".
  if (arch == "llama" && lower(m.string("general.name", "")).find("mistral") != std::string::npos) {
    hf_arch = "MistralForCausalLM";
    model_type = "mistral";
  }

  std::vector<std::pair<std::string, std::string>> kv;
  auto put = [&](const std::string& k, const std::string& v) { kv.emplace_back(k, v); };
  put("architectures", "[" + quoted(hf_arch) + "]");
  put("model_type", quoted(model_type));
  put("vocab_size", std::to_string(embd->ne[1]));
  put("hidden_size", std::to_string(hidden));
  put("intermediate_size", std::to_string(m.integer("feed_forward_length")));
  put("num_hidden_layers", std::to_string(layers));
  put("num_attention_heads", std::to_string(heads));
  put("num_key_value_heads", std::to_string(kv_heads));
  put("head_dim", std::to_string(head_dim));
  put("max_position_embeddings", std::to_string(m.integer("context_length")));
  put("rms_norm_eps", num(m.number("attention.layer_norm_rms_epsilon", 1e-6)));
  put("tie_word_embeddings", f.tensor("output.weight") ? "false" : "true");
  put("torch_dtype", quoted("float32"));

  // Rope scaling: linear or yarn from metadata, llama3 from the rope_freqs tensor.
  std::string rope_scaling = "null";
  const std::string scaling_type = m.string(arch + ".rope.scaling.type", "none");
  if (scaling_type == "linear") {
    rope_scaling = "{\"rope_type\": \"linear\", \"factor\": " + num(m.number("rope.scaling.factor", 1.0)) + "}";
  } else if (scaling_type != "none") {
    unsupported(f.path() + ": GGUF rope scaling \"" + scaling_type + "\" is not supported (linear and llama3 are)");
  }
  if (const GgufTensor* freqs = f.tensor("rope_freqs.weight"))
    rope_scaling = llama3_rope_from_freqs(f, *freqs, head_dim, rope_theta);

  const double window = double(m.integer("attention.sliding_window", int64_t(0)));
  if (is_gemma(arch)) {
    put("hidden_activation", quoted("gelu_pytorch_tanh"));
    put("hidden_act", quoted("gelu_pytorch_tanh"));
  } else {
    put("hidden_act", quoted("silu"));
  }
  if (arch == "qwen2") put("use_sliding_window", "false");
  if (model_type == "mistral") put("sliding_window", window > 0 ? std::to_string(int64_t(window)) : "null");

  if (arch == "gemma2" || arch == "gemma3") {
    // llama.cpp's attention scale: 1/sqrt(hidden / heads) for the 27B models
    // (query_pre_attn_scalar 144 and 168 in their configs), 1/sqrt(head_dim) otherwise.
    const int64_t layers_27b = arch == "gemma2" ? 46 : 62;
    put("query_pre_attn_scalar", std::to_string(layers == layers_27b ? hidden / heads : head_dim));
    put("sliding_window", std::to_string(int64_t(window > 0 ? window : 4096)));
    // Gemma 2 alternates local and global layers; Gemma 3 has five local to one global.
    const int64_t period = arch == "gemma2" ? 2 : 6;
    std::string types = "[";
    for (int64_t l = 0; l < layers; ++l)
      types += std::string(l ? ", " : "") + ((l + 1) % period ? "\"sliding_attention\"" : "\"full_attention\"");
    put("layer_types", types + "]");
    put("sliding_window_pattern", std::to_string(period));
    if (arch == "gemma2") {
      put("attn_logit_softcapping", num(m.number("attn_logit_softcapping", 50.0)));
      put("final_logit_softcapping", num(m.number("final_logit_softcapping", 30.0)));
      put("rope_theta", num(rope_theta));
    } else {
      put("attn_logit_softcapping", "null");
      put("final_logit_softcapping", "null");
      // Local layers rotate with base 10000 (llama.cpp hard-codes it, as does the
      // Hugging Face config); the scaling applies to global layers only.
      put("rope_theta", num(rope_theta));
      put("rope_local_base_freq", num(10000.0));
    }
  } else {
    put("rope_theta", num(rope_theta));
  }
  put("rope_scaling", rope_scaling);

  // Special tokens: eos plus the vocabulary's end-of-turn tokens.
  std::vector<int64_t> eos;
  auto add_eos = [&](int64_t id) {
    if (id >= 0 && id < embd->ne[1] && std::find(eos.begin(), eos.end(), id) == eos.end()) eos.push_back(id);
  };
  add_eos(m.token_id("tokenizer.ggml.eos_token_id"));
  add_eos(m.token_id("tokenizer.ggml.eot_token_id"));
  add_eos(m.token_id("tokenizer.ggml.eom_token_id"));
  if (const GgufValue* tokens = f.find("tokenizer.ggml.tokens")) {
    for (size_t i = 0; i < tokens->strings.size(); ++i) {
      for (const char* t : kEndOfTurnTokens) {
        if (tokens->strings[i] == t) add_eos(int64_t(i));
      }
    }
  }
  std::string eos_list = "[";
  for (size_t i = 0; i < eos.size(); ++i) eos_list += (i ? ", " : "") + std::to_string(eos[i]);
  put("eos_token_id", eos_list + "]");
  const int64_t bos = m.token_id("tokenizer.ggml.bos_token_id");
  if (bos >= 0) put("bos_token_id", std::to_string(bos));

  std::ostringstream out;
  out << "{";
  for (size_t i = 0; i < kv.size(); ++i) out << (i ? ",\n " : "\n ") << quoted(kv[i].first) << ": " << kv[i].second;
  out << "\n}\n";
  return out.str();
}

ModelConfig gguf_model_config(const GgufFile& f) {
  const std::string where = f.path() + " (GGUF metadata as config.json)";
  Json cfg;
  try {
    cfg = json_parse(gguf_config_json(f));
  } catch (const std::invalid_argument& e) {
    throw EngineError(ErrorCode::internal, where + ": " + e.what());
  }
  return model_config_parse(cfg, where, nullptr, "");
}

SafetensorsSet gguf_weights(std::shared_ptr<GgufFile> file, std::map<std::string, QuantWeight>* int4) {
  const GgufFile& f = *file;
  const std::string arch = arch_of(f).gguf;
  const Meta m(f, arch);
  const bool permuted_qk = arch == "llama";
  const int64_t heads = m.integer("attention.head_count");
  const int64_t kv_heads = m.integer("attention.head_count_kv", heads);

  struct Storage {
    std::shared_ptr<GgufFile> file;
    std::vector<std::vector<float>> buffers;
  };
  auto storage = std::make_shared<Storage>();
  storage->file = file;
  std::vector<SafetensorsTensor> out;
  for (const GgufTensor& t : f.tensors()) {
    if (t.name == "rope_freqs.weight") continue;  // read into the config's rope scaling
    const std::string hf = gguf_tensor_hf_name(arch, t.name);
    if (hf.empty())
      unsupported(f.path() + ": GGUF tensor '" + t.name + "' has no counterpart in batchgen's " + arch + " model");
    if (!ggml_type_supported(t.type))
      unsupported(f.path() + ": tensor '" + t.name + "' has type " + ggml_type_name(t.type) +
                  ", which batchgen cannot dequantize (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, "
                  "Q5_K and Q6_K are supported)");
    SafetensorsTensor st;
    st.name = hf;
    st.file = f.path();
    st.st_dtype = ggml_type_name(t.type);
    st.supported = true;
    st.shape = t.shape();
    const bool norm_offset = is_gemma(arch) && hf.size() > 11 && hf.compare(hf.size() - 11, 11, "norm.weight") == 0;
    const bool is_q = hf.find("self_attn.q_proj.") != std::string::npos;
    const bool is_k = hf.find("self_attn.k_proj.") != std::string::npos;
    const bool unpermute = permuted_qk && (is_q || is_k);
    // convert_hf_to_gguf.py permuted each head's rows from halves to interleaved
    // pairs: GGUF row 2i + j of a head is Hugging Face row j * (dim / 2) + i.
    std::vector<int64_t> src_of;
    if (unpermute) {
      const int64_t n_head = is_q ? heads : kv_heads;
      const int64_t rows = st.shape[0];
      if (rows % (2 * n_head) != 0)
        load_error(f.path() + ": tensor '" + t.name + "' has " + std::to_string(rows) + " rows, not a multiple of 2 x " +
                   std::to_string(n_head) + " heads");
      const int64_t half = rows / n_head / 2;
      src_of.resize(size_t(rows));
      for (int64_t h = 0; h < n_head; ++h) {
        for (int64_t i = 0; i < half; ++i) {
          for (int64_t j = 0; j < 2; ++j) src_of[size_t(h * 2 * half + j * half + i)] = h * 2 * half + 2 * i + j;
        }
      }
    }
    const bool linear = hf == "lm_head.weight" || hf.find("_proj.weight") != std::string::npos;
    if (int4 && linear && gguf_type_repacks_int4(t.type) && st.shape.size() == 2 &&
        st.shape[1] % ggml_block(t.type).elems == 0) {
      QuantWeight q = gguf_repack_int4(t, f.path());
      if (unpermute) quant_reorder_rows(q, src_of);
      int4->emplace(hf, std::move(q));
      continue;
    }
    const bool plain = t.type == 0 || t.type == 1 || t.type == 30;
    if (plain && !norm_offset && !unpermute) {
      st.dtype = t.type == 0 ? DType::f32 : t.type == 1 ? DType::f16 : DType::bf16;
      st.data = t.data;
      st.nbytes = t.nbytes;
      out.push_back(std::move(st));
      continue;
    }
    std::vector<float> values(size_t(t.numel()));
    ggml_dequantize(t.type, t.data, t.numel(), values.data());
    if (norm_offset) {
      for (float& v : values) v -= 1.0f;
    }
    if (unpermute) {
      const int64_t cols = st.shape.size() > 1 ? st.shape[1] : 1;
      std::vector<float> hf_rows(values.size());
      for (size_t r = 0; r < src_of.size(); ++r)
        std::copy_n(values.begin() + src_of[r] * cols, cols, hf_rows.begin() + int64_t(r) * cols);
      values.swap(hf_rows);
    }
    st.dtype = DType::f32;
    st.data = values.data();
    st.nbytes = values.size() * sizeof(float);
    storage->buffers.push_back(std::move(values));
    out.push_back(std::move(st));
  }
  return SafetensorsSet::from_tensors(f.path(), std::move(out), storage);
}

}  // namespace bg
