// config.json (+ generation_config.json) -> ModelConfig, with the defaults each
// transformers config class applies when a field is absent, and the rotary
// frequencies as transformers computes them.

#include <sys/stat.h>

#include <algorithm>
#include <cmath>

#include "model/json.h"
#include "model/model_files.h"
#include "model/model.h"

namespace bg {
namespace {

[[noreturn]] void load_error(const std::string& msg) { throw EngineError(ErrorCode::model_load, msg); }
[[noreturn]] void unsupported(const std::string& msg) { throw EngineError(ErrorCode::unsupported, msg); }

struct ArchInfo {
  const char* architecture;
  const char* model_type;
};
constexpr ArchInfo kArchs[] = {
    {"GemmaForCausalLM", "gemma"},
    {"Gemma2ForCausalLM", "gemma2"},
    {"Gemma3ForCausalLM", "gemma3_text"},
    {"Gemma3ForConditionalGeneration", "gemma3"},  // its text model (text_config) runs
    {"LlamaForCausalLM", "llama"},
    {"MistralForCausalLM", "mistral"},
    {"Qwen2ForCausalLM", "qwen2"},
    {"Qwen3ForCausalLM", "qwen3"},
};

constexpr int32_t kMaxLayers = 4096;

std::string supported_list() {
  std::string s;
  for (const ArchInfo& a : kArchs) s += (s.empty() ? "" : ", ") + std::string(a.architecture);
  return s;
}

// Typed field access with the file named in every message.
class Fields {
 public:
  Fields(const Json& obj, std::string path) : obj_(obj), path_(std::move(path)) {}

  int64_t integer(const char* key, const int64_t* fallback, int64_t min_value = 1) const {
    const Json* v = obj_.find_value(key);
    if (!v) {
      if (fallback) return *fallback;
      load_error(path_ + ": missing field \"" + key + "\"");
    }
    // 4096.0 is tolerated as an integer; 4096.5 is not.
    if (!v->is_number() || (!v->is_integer() && v->as_double() != std::floor(v->as_double())))
      load_error(path_ + ": field \"" + key + "\" must be an integer");
    int64_t x = v->is_integer() ? v->as_int() : int64_t(v->as_double());
    if (x < min_value || x > (int64_t(1) << 31) - 1)
      load_error(path_ + ": field \"" + key + "\" = " + std::to_string(x) + " is out of range");
    return x;
  }
  int64_t integer(const char* key, int64_t fallback, int64_t min_value = 1) const {
    return integer(key, &fallback, min_value);
  }
  int64_t required_integer(const char* key) const { return integer(key, nullptr); }

  double number(const char* key, double fallback) const {
    const Json* v = obj_.find_value(key);
    if (!v) return fallback;
    if (!v->is_number()) load_error(path_ + ": field \"" + key + "\" must be a number");
    return v->as_double();
  }

  // A number that may be null (Python None, read as 0); `fallback` when absent.
  double nullable_number(const char* key, double fallback) const {
    const Json* v = obj_.find(key);
    if (!v) return fallback;
    if (v->is_null()) return 0.0;
    if (!v->is_number()) load_error(path_ + ": field \"" + key + "\" must be a number or null");
    return v->as_double();
  }

  bool boolean(const char* key, bool fallback) const {
    const Json* v = obj_.find_value(key);
    if (!v) return fallback;
    if (!v->is_bool()) load_error(path_ + ": field \"" + key + "\" must be true or false");
    return v->as_bool();
  }

  std::string string(const char* key, const std::string& fallback) const {
    const Json* v = obj_.find_value(key);
    if (!v) return fallback;
    if (!v->is_string()) load_error(path_ + ": field \"" + key + "\" must be a string");
    return v->as_string();
  }

  // An id or list of ids (eos_token_id may be either); absent or null -> empty.
  std::vector<int32_t> id_list(const char* key) const {
    std::vector<int32_t> out;
    const Json* v = obj_.find_value(key);
    if (!v) return out;
    auto add = [&](const Json& x) {
      if (!x.is_integer() || x.as_int() < 0 || x.as_int() > INT32_MAX)
        load_error(path_ + ": field \"" + key + "\" must hold non-negative token ids");
      out.push_back(int32_t(x.as_int()));
    };
    if (v->is_array()) {
      for (const Json& x : v->items()) add(x);
    } else {
      add(*v);
    }
    return out;
  }

 private:
  const Json& obj_;
  std::string path_;
};

void append_unique(std::vector<int32_t>& ids, const std::vector<int32_t>& more) {
  for (int32_t id : more) {
    bool seen = false;
    for (int32_t x : ids) seen = seen || x == id;
    if (!seen) ids.push_back(id);
  }
}

// One rotary embedding's type and parameters from `spec` (a rope_parameters or
// rope_scaling object, or null for the default type), its theta falling back to `theta`.
void read_rope_spec(const Json* spec, const std::string& where, double theta, double partial,
                    int32_t max_position_embeddings, float& theta_out, RopeScaling& scaling) {
  if (spec && !spec->is_object()) load_error(where + " must be an object");
  if (spec) theta = Fields(*spec, where).number("rope_theta", theta);
  if (!(theta > 0)) load_error(where + ": rope_theta must be positive");
  theta_out = float(theta);
  scaling = RopeScaling{};
  if (!spec) return;
  Fields f(*spec, where);
  std::string type = f.string("rope_type", f.string("type", "default"));
  partial = f.number("partial_rotary_factor", partial);
  if (partial != 1.0) unsupported(where + ": partial_rotary_factor " + std::to_string(partial) + " is not supported");
  if (type == "default") return;
  if (type != "linear" && type != "llama3")
    unsupported(where + ": rope type \"" + type + "\" is not supported (default, linear, llama3 are)");
  scaling.type = type;
  const Json* factor = spec->find_value("factor");
  if (!factor || !factor->is_number() || !(factor->as_double() > 0))
    load_error(where + ": rope type \"" + type + "\" needs a positive \"factor\"");
  scaling.factor = float(factor->as_double());
  if (type == "llama3") {
    scaling.low_freq_factor = float(f.number("low_freq_factor", NAN));
    scaling.high_freq_factor = float(f.number("high_freq_factor", NAN));
    if (std::isnan(scaling.low_freq_factor) || std::isnan(scaling.high_freq_factor))
      load_error(where + ": rope type \"llama3\" needs low_freq_factor and high_freq_factor");
    if (!(scaling.high_freq_factor > scaling.low_freq_factor) || !(scaling.low_freq_factor > 0))
      load_error(where + ": llama3 rope needs 0 < low_freq_factor < high_freq_factor");
    // transformers falls back to max_position_embeddings when this is absent.
    scaling.original_max_position_embeddings =
        int32_t(f.integer("original_max_position_embeddings", int64_t(max_position_embeddings)));
  }
}

// Rope type and parameters from either the transformers 5 form
// ("rope_parameters": {"rope_type", "rope_theta", ...}) or the older one
// ("rope_theta" + "rope_scaling": {"type"|"rope_type", ...}). Gemma 3 has one per
// layer type: rope_parameters {"full_attention": {...}, "sliding_attention": {...}},
// or in the older form rope_theta + rope_scaling (global) and rope_local_base_freq.
void read_rope(const Json& cfg, const std::string& path, bool per_layer_type, ModelConfig& c) {
  const Json* params = cfg.find_value("rope_parameters");
  if (params && !params->is_object()) load_error(path + ": \"rope_parameters\" must be an object");
  const Json* scaling = cfg.find_value("rope_scaling");
  if (scaling && !scaling->is_object()) load_error(path + ": \"rope_scaling\" must be an object");
  Fields top(cfg, path);
  const double partial = top.number("partial_rotary_factor", 1.0);
  const int32_t max_pos = c.max_position_embeddings;
  if (!per_layer_type) {
    read_rope_spec(params ? params : scaling, path + (params ? " rope_parameters" : " rope_scaling"),
                   top.number("rope_theta", 10000.0), partial, max_pos, c.rope_theta, c.rope_scaling);
    return;
  }
  const Json* full = params ? params->find_value("full_attention") : nullptr;
  const Json* local = params ? params->find_value("sliding_attention") : nullptr;
  const bool nested = full || local;
  const Json* global_spec = nested ? full : params ? params : scaling;
  read_rope_spec(global_spec, path + (nested ? " rope_parameters.full_attention" : params ? " rope_parameters" : " rope_scaling"),
                 top.number("rope_theta", 1000000.0), partial, max_pos, c.rope_theta, c.rope_scaling);
  read_rope_spec(local, path + " rope_parameters.sliding_attention", top.number("rope_local_base_freq", 10000.0),
                 partial, max_pos, c.rope_local_theta, c.rope_local_scaling);
}

// Per-layer windows from "layer_types" ("full_attention" | "sliding_attention"), or
// the pattern the config class fills in when it is absent.
std::vector<int32_t> read_layer_windows(const Json& cfg, const std::string& path, const std::string& type,
                                        int32_t num_layers) {
  Fields f(cfg, path);
  // Model::load checks the layer count against the weights only later: nothing may be
  // sized by an absurd count before that (2e9 layers would be 8 GB here).
  if (num_layers < 1 || num_layers > 65536) {
    load_error(path + ": num_hidden_layers = " + std::to_string(num_layers) + " is outside [1, 65536]");
  }
  std::vector<int32_t> windows(size_t(num_layers), 0);
  const bool gemma2 = type == "gemma2", gemma3 = type == "gemma3_text" || type == "gemma3";
  const bool qwen = type == "qwen2" || type == "qwen3";
  int32_t window = 0;
  if (type == "mistral") {
    // Mistral windows every layer; it has no layer_types.
    window = int32_t(f.nullable_number("sliding_window", 4096.0));
    if (window < 0) load_error(path + ": sliding_window must be >= 0");
    for (int32_t& w : windows) w = window;
    return windows;
  }
  if (gemma2 || gemma3) {
    window = int32_t(f.nullable_number("sliding_window", 4096.0));
  } else if (qwen) {
    window = f.boolean("use_sliding_window", false) ? int32_t(f.nullable_number("sliding_window", 4096.0)) : 0;
  } else {
    return windows;  // gemma, llama: full attention everywhere
  }
  if (window < 0) load_error(path + ": sliding_window must be >= 0");
  if (const Json* types = cfg.find_value("layer_types")) {
    if (!types->is_array() || types->items().size() != size_t(num_layers))
      load_error(path + ": \"layer_types\" must list one type for each of the " + std::to_string(num_layers) + " layers");
    for (size_t i = 0; i < types->items().size(); ++i) {
      const Json& t = types->items()[i];
      const std::string name = t.is_string() ? t.as_string() : "";
      if (name == "sliding_attention") {
        windows[i] = window;
      } else if (name != "full_attention") {
        unsupported(path + ": layer type \"" + (t.is_string() ? name : std::string("(not a string)")) +
                    "\" of layer " + std::to_string(i) + " is not supported (full_attention, sliding_attention are)");
      }
    }
    return windows;
  }
  const int64_t pattern = gemma2 ? 2 : gemma3 ? f.integer("sliding_window_pattern", f.integer("_sliding_window_pattern", 6)) : 0;
  const int64_t first_window_layer = qwen ? f.integer("max_window_layers", 28, 0) : 0;
  for (int32_t i = 0; i < num_layers; ++i) {
    const bool sliding = qwen ? i >= first_window_layer : (i + 1) % pattern != 0;
    if (sliding) windows[size_t(i)] = window;
  }
  return windows;
}

}  // namespace

ModelConfig model_config_load(const std::string& model_dir) {
  struct stat st;
  if (::stat(model_dir.c_str(), &st) != 0)
    load_error("model directory " + model_dir + " does not exist");
  if (!S_ISDIR(st.st_mode)) load_error(model_dir + " is not a directory");
  const std::string path = model_dir + "/config.json";
  if (!is_regular_file(path)) load_error("missing config.json in " + model_dir);
  const Json top_cfg = read_json_object_file(path);
  const std::string gen_path = model_dir + "/generation_config.json";
  if (!is_regular_file(gen_path)) return model_config_parse(top_cfg, path, nullptr, gen_path);
  const Json gen = read_json_object_file(gen_path);
  return model_config_parse(top_cfg, path, &gen, gen_path);
}

ModelConfig model_config_parse(const Json& top_cfg, const std::string& path, const Json* gen,
                               const std::string& gen_path) {
  const Fields top(top_cfg, path);

  ModelConfig c;
  std::string model_type = top.string("model_type", "");
  std::string arch;
  if (const Json* archs = top_cfg.find_value("architectures")) {
    if (!archs->is_array() || archs->items().empty() || !archs->items()[0].is_string())
      load_error(path + ": \"architectures\" must be a non-empty list of names");
    arch = archs->items()[0].as_string();
  }
  const ArchInfo* info = nullptr;
  for (const ArchInfo& a : kArchs) {
    if (!arch.empty() ? arch == a.architecture : model_type == a.model_type) info = &a;
  }
  if (!info) {
    if (arch.empty() && model_type.empty())
      load_error(path + ": neither \"architectures\" nor \"model_type\" says what model this is");
    unsupported("unsupported architecture " +
                (arch.empty() ? "(model_type \"" + model_type + "\")" : "\"" + arch + "\"" +
                 (model_type.empty() ? "" : " (model_type \"" + model_type + "\")")) +
                " in " + path + "; supported: " + supported_list());
  }
  if (!model_type.empty() && model_type != info->model_type)
    load_error(path + ": architecture " + info->architecture + " does not match model_type \"" +
               model_type + "\"");
  c.architecture = info->architecture;
  c.model_type = info->model_type;
  const std::string& type = c.model_type;
  const bool gemma1 = type == "gemma", gemma2 = type == "gemma2";
  const bool gemma3 = type == "gemma3_text" || type == "gemma3";
  const bool gemma = gemma1 || gemma2 || gemma3;

  // A multimodal Gemma 3 checkpoint keeps its text model's fields under text_config.
  const Json* text_cfg = &top_cfg;
  std::string cpath = path;
  if (type == "gemma3") {
    text_cfg = top_cfg.find_value("text_config");
    if (!text_cfg || !text_cfg->is_object()) load_error(path + ": a Gemma3ForConditionalGeneration config needs a \"text_config\" object");
    cpath = path + " text_config";
    const std::string inner = Fields(*text_cfg, cpath).string("model_type", "gemma3_text");
    if (inner != "gemma3_text") load_error(cpath + ": model_type \"" + inner + "\" is not gemma3_text");
  }
  const Json& cfg = *text_cfg;
  const Fields f(cfg, cpath);

  // Gemma 2/3 configs on the Hub may leave out fields whose class defaults they rely
  // on (Gemma 3's text_config often holds only a few): those defaults, as transformers has them.
  struct ShapeDefaults { int64_t vocab, hidden, inter, layers, heads, kv_heads, head_dim; };
  const ShapeDefaults gemma2_shape{256000, 2304, 9216, 26, 8, 4, 256}, gemma3_shape{262208, 2304, 9216, 26, 8, 4, 256};
  const ShapeDefaults* d = gemma2 ? &gemma2_shape : gemma3 ? &gemma3_shape : nullptr;
  auto shape_field = [&](const char* key, int64_t ShapeDefaults::*member) {
    return int32_t(d ? f.integer(key, d->*member) : f.required_integer(key));
  };
  c.vocab_size = shape_field("vocab_size", &ShapeDefaults::vocab);
  c.hidden_size = shape_field("hidden_size", &ShapeDefaults::hidden);
  c.intermediate_size = shape_field("intermediate_size", &ShapeDefaults::inter);
  c.num_layers = shape_field("num_hidden_layers", &ShapeDefaults::layers);
  // Per-layer settings are sized by the layer count before any weight is read; the
  // deepest published models have about 130 layers.
  if (c.num_layers > kMaxLayers)
    load_error(cpath + ": num_hidden_layers = " + std::to_string(c.num_layers) + " is more than the " +
               std::to_string(kMaxLayers) + " layers this engine takes");
  c.num_heads = shape_field("num_attention_heads", &ShapeDefaults::heads);
  c.num_kv_heads = int32_t(f.integer("num_key_value_heads", d ? d->kv_heads : int64_t(c.num_heads)));
  if (cfg.find_value("head_dim") || d) {
    c.head_dim = shape_field("head_dim", &ShapeDefaults::head_dim);
  } else {
    if (c.hidden_size % c.num_heads != 0)
      load_error(cpath + ": hidden_size " + std::to_string(c.hidden_size) +
                 " is not a multiple of num_attention_heads " + std::to_string(c.num_heads) +
                 " and no head_dim is given");
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.num_heads % c.num_kv_heads != 0)
    load_error(cpath + ": num_attention_heads " + std::to_string(c.num_heads) +
               " is not a multiple of num_key_value_heads " + std::to_string(c.num_kv_heads));
  if (c.head_dim % 2 != 0) load_error(cpath + ": head_dim " + std::to_string(c.head_dim) + " must be even for rotary embeddings");

  const int64_t default_max_pos = gemma3 ? 131072 : gemma ? 8192 : type == "llama" ? 2048 : 32768;
  c.max_position_embeddings = int32_t(f.integer("max_position_embeddings", default_max_pos));
  c.rms_norm_eps = float(f.number("rms_norm_eps", 1e-6));
  if (!(c.rms_norm_eps > 0)) load_error(cpath + ": rms_norm_eps must be positive");
  read_rope(cfg, cpath, gemma3, c);
  // A multimodal checkpoint ties (or not) at its top level.
  c.tie_word_embeddings = top.boolean("tie_word_embeddings", f.boolean("tie_word_embeddings", gemma));
  c.torch_dtype = top.string("dtype", top.string("torch_dtype", f.string("dtype", f.string("torch_dtype", ""))));

  // Biases: qwen2 always has q/k/v biases and never an o bias; the others put one on
  // all four projections when attention_bias is set; mistral has none.
  if (type == "qwen2") {
    c.attention_bias = true;
  } else if (type != "mistral") {
    c.attention_bias = c.attention_out_bias = f.boolean("attention_bias", false);
  }
  if (f.boolean("mlp_bias", false)) unsupported(cpath + ": mlp_bias is not supported");

  if (gemma) {
    // Gemma's legacy "gelu" means the tanh approximation (transformers rewrites it).
    const std::string act = f.string("hidden_activation", f.string("hidden_act", "gelu_pytorch_tanh"));
    if (act != "gelu_pytorch_tanh" && act != "gelu" && act != "gelu_new" && act != "gelu_fast")
      unsupported(cpath + ": hidden_activation \"" + act + "\" is not supported for " + type);
    c.activation = Activation::gelu_tanh;
    c.norm_weight_offset = 1.0f;
    c.scale_embeddings = true;
    if (f.boolean("use_bidirectional_attention", false))
      unsupported(cpath + ": use_bidirectional_attention is not supported");
  } else {
    const std::string act = f.string("hidden_act", "silu");
    if (act != "silu" && act != "swish") unsupported(cpath + ": hidden_act \"" + act + "\" is not supported");
    c.activation = Activation::silu;
  }
  if (gemma2 || gemma3) {
    c.sandwich_norms = true;
    c.query_pre_attn_scalar = float(f.number("query_pre_attn_scalar", 256.0));
    if (!(c.query_pre_attn_scalar > 0)) load_error(cpath + ": query_pre_attn_scalar must be positive");
    c.attn_logit_softcap = float(f.nullable_number("attn_logit_softcapping", gemma2 ? 50.0 : 0.0));
    c.final_logit_softcap = float(f.nullable_number("final_logit_softcapping", gemma2 ? 30.0 : 0.0));
    if (c.attn_logit_softcap < 0 || c.final_logit_softcap < 0)
      load_error(cpath + ": soft-capping values must be positive (or null for none)");
  }
  c.qk_norm = gemma3 || type == "qwen3";

  c.layer_windows = read_layer_windows(cfg, cpath, type, c.num_layers);
  for (int32_t w : c.layer_windows) c.sliding_window = std::max(c.sliding_window, w);

  // EOS: generation_config.json is what transformers' generate() uses; config.json's
  // ids (top level, then text_config) are added so either file is enough.
  std::vector<int32_t> eos;
  int32_t bos = -1;
  if (gen) {
    Fields g(*gen, gen_path);
    eos = g.id_list("eos_token_id");
    std::vector<int32_t> b = g.id_list("bos_token_id");
    if (!b.empty()) bos = b[0];
  }
  append_unique(eos, top.id_list("eos_token_id"));
  if (&cfg != &top_cfg) append_unique(eos, f.id_list("eos_token_id"));
  for (const Fields* src : {&top, &f}) {
    std::vector<int32_t> b = src->id_list("bos_token_id");
    if (bos < 0 && !b.empty()) bos = b[0];
  }
  for (int32_t id : eos) {
    if (id >= c.vocab_size)
      load_error(path + ": eos_token_id " + std::to_string(id) + " is outside the vocabulary (" +
                 std::to_string(c.vocab_size) + ")");
  }
  c.eos_token_ids = eos;
  c.bos_token_id = bos < c.vocab_size ? bos : -1;
  c.quant = quant_scheme_parse(top_cfg.find_value("quantization_config"), path);
  return c;
}

int32_t ModelConfig::attention_reach() const {
  int32_t reach = 0;
  for (int32_t w : layer_windows) {
    if (w == 0) return 0;
    reach = std::max(reach, w);
  }
  return reach;
}

RopeConfig rope_config_make(const ModelConfig& c, bool local) {
  RopeConfig r;
  r.head_dim = c.head_dim;
  r.rotary_dim = c.head_dim;
  const int32_t dim = r.rotary_dim;
  const bool own_local = local && c.rope_local_theta > 0;
  const float base = own_local ? c.rope_local_theta : c.rope_theta;
  r.inv_freq.resize(size_t(dim / 2));
  // transformers: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all in f32
  // (a python scalar over an f32 tensor computes in f32; 1.0 / t is reciprocal).
  for (int32_t i = 0; i < dim / 2; ++i) {
    float e = float(2 * i) / float(dim);
    r.inv_freq[size_t(i)] = 1.0f / std::pow(base, e);
  }
  const RopeScaling& s = own_local ? c.rope_local_scaling : c.rope_scaling;
  if (s.type == "linear") {
    for (float& f : r.inv_freq) f = f / s.factor;
  } else if (s.type == "llama3") {
    const float factor = s.factor;
    const float low = s.low_freq_factor, high = s.high_freq_factor;
    const float old_len = float(s.original_max_position_embeddings);
    // Python floats, then compared against / combined with f32 tensors.
    const float low_freq_wavelen = float(double(s.original_max_position_embeddings) / double(low));
    const float high_freq_wavelen = float(double(s.original_max_position_embeddings) / double(high));
    const float two_pi = float(2.0 * M_PI);
    const float denom = float(double(high) - double(low));
    for (float& f : r.inv_freq) {
      // `2 * math.pi / inv_freq` is reciprocal(inv_freq) * 2pi in torch.
      float wavelen = (1.0f / f) * two_pi;
      float llama = wavelen > low_freq_wavelen ? f / factor : f;
      float smooth = ((1.0f / wavelen) * old_len - low) / denom;
      float smoothed = (1.0f - smooth) * llama / factor + smooth * llama;
      bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
      f = medium ? smoothed : llama;
    }
  }
  r.attention_scaling = 1.0f;
  return r;
}

}  // namespace bg
