// config.json (+ generation_config.json) -> ModelConfig, with the defaults each
// transformers config class applies when a field is absent, and the rotary
// frequencies as transformers computes them.
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "model/json.h"
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
    {"LlamaForCausalLM", "llama"},
    {"MistralForCausalLM", "mistral"},
    {"Qwen2ForCausalLM", "qwen2"},
};

std::string supported_list() {
  std::string s;
  for (const ArchInfo& a : kArchs) s += (s.empty() ? "" : ", ") + std::string(a.architecture);
  return s;
}

bool is_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) load_error("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  try {
    Json j = json_parse(ss.str());
    if (!j.is_object()) load_error(path + ": expected a JSON object");
    return j;
  } catch (const std::invalid_argument& e) {
    load_error(path + ": " + e.what());
  }
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

// Rope type and parameters from either the transformers 5 form
// ("rope_parameters": {"rope_type", "rope_theta", ...}) or the older one
// ("rope_theta" + "rope_scaling": {"type"|"rope_type", ...}).
void read_rope(const Json& cfg, const std::string& path, ModelConfig& c) {
  const Json* params = cfg.find_value("rope_parameters");
  if (params && !params->is_object()) load_error(path + ": \"rope_parameters\" must be an object");
  const Json* scaling = cfg.find_value("rope_scaling");
  if (scaling && !scaling->is_object()) load_error(path + ": \"rope_scaling\" must be an object");

  Fields top(cfg, path);
  double theta = top.number("rope_theta", 10000.0);
  if (params) theta = Fields(*params, path + " rope_parameters").number("rope_theta", theta);
  if (!(theta > 0)) load_error(path + ": rope_theta must be positive");
  c.rope_theta = float(theta);

  const Json* spec = params ? params : scaling;
  if (!spec) return;
  const std::string where = path + (params ? " rope_parameters" : " rope_scaling");
  Fields f(*spec, where);
  std::string type = f.string("rope_type", f.string("type", "default"));
  double partial = f.number("partial_rotary_factor", top.number("partial_rotary_factor", 1.0));
  if (partial != 1.0) unsupported(where + ": partial_rotary_factor " + std::to_string(partial) + " is not supported");
  if (type == "default") return;
  if (type != "linear" && type != "llama3")
    unsupported(where + ": rope type \"" + type + "\" is not supported (default, linear, llama3 are)");
  c.rope_scaling.type = type;
  const Json* factor = spec->find_value("factor");
  if (!factor || !factor->is_number() || !(factor->as_double() > 0))
    load_error(where + ": rope type \"" + type + "\" needs a positive \"factor\"");
  c.rope_scaling.factor = float(factor->as_double());
  if (type == "llama3") {
    c.rope_scaling.low_freq_factor = float(f.number("low_freq_factor", NAN));
    c.rope_scaling.high_freq_factor = float(f.number("high_freq_factor", NAN));
    if (std::isnan(c.rope_scaling.low_freq_factor) || std::isnan(c.rope_scaling.high_freq_factor))
      load_error(where + ": rope type \"llama3\" needs low_freq_factor and high_freq_factor");
    if (!(c.rope_scaling.high_freq_factor > c.rope_scaling.low_freq_factor) || !(c.rope_scaling.low_freq_factor > 0))
      load_error(where + ": llama3 rope needs 0 < low_freq_factor < high_freq_factor");
    // transformers falls back to max_position_embeddings when this is absent.
    c.rope_scaling.original_max_position_embeddings =
        int32_t(f.integer("original_max_position_embeddings", int64_t(c.max_position_embeddings)));
  }
}

}  // namespace

ModelConfig model_config_load(const std::string& model_dir) {
  struct stat st;
  if (::stat(model_dir.c_str(), &st) != 0)
    load_error("model directory " + model_dir + " does not exist");
  if (!S_ISDIR(st.st_mode)) load_error(model_dir + " is not a directory");
  const std::string path = model_dir + "/config.json";
  if (!is_file(path)) load_error("missing config.json in " + model_dir);
  const Json cfg = read_json_file(path);
  const Fields f(cfg, path);

  ModelConfig c;
  std::string model_type = f.string("model_type", "");
  std::string arch;
  if (const Json* archs = cfg.find_value("architectures")) {
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
  const bool gemma = type == "gemma";

  c.vocab_size = int32_t(f.required_integer("vocab_size"));
  c.hidden_size = int32_t(f.required_integer("hidden_size"));
  c.intermediate_size = int32_t(f.required_integer("intermediate_size"));
  c.num_layers = int32_t(f.required_integer("num_hidden_layers"));
  c.num_heads = int32_t(f.required_integer("num_attention_heads"));
  c.num_kv_heads = int32_t(f.integer("num_key_value_heads", int64_t(c.num_heads)));
  if (cfg.find_value("head_dim")) {
    c.head_dim = int32_t(f.required_integer("head_dim"));
  } else {
    if (c.hidden_size % c.num_heads != 0)
      load_error(path + ": hidden_size " + std::to_string(c.hidden_size) +
                 " is not a multiple of num_attention_heads " + std::to_string(c.num_heads) +
                 " and no head_dim is given");
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.num_heads % c.num_kv_heads != 0)
    load_error(path + ": num_attention_heads " + std::to_string(c.num_heads) +
               " is not a multiple of num_key_value_heads " + std::to_string(c.num_kv_heads));
  if (c.head_dim % 2 != 0) load_error(path + ": head_dim " + std::to_string(c.head_dim) + " must be even for rotary embeddings");

  const int64_t default_max_pos = gemma ? 8192 : type == "llama" ? 2048 : 32768;
  c.max_position_embeddings = int32_t(f.integer("max_position_embeddings", default_max_pos));
  c.rms_norm_eps = float(f.number("rms_norm_eps", type == "mistral" ? 1e-6 : 1e-6));
  if (!(c.rms_norm_eps > 0)) load_error(path + ": rms_norm_eps must be positive");
  read_rope(cfg, path, c);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", gemma);
  c.torch_dtype = f.string("dtype", f.string("torch_dtype", ""));

  // Biases: qwen2 always has q/k/v biases and never an o bias; llama and gemma put
  // one on all four projections when attention_bias is set; mistral has none.
  if (type == "qwen2") {
    c.attention_bias = true;
  } else if (type != "mistral") {
    c.attention_bias = c.attention_out_bias = f.boolean("attention_bias", false);
  }
  if (f.boolean("mlp_bias", false)) unsupported(path + ": mlp_bias is not supported");

  std::string act = f.string("hidden_act", gemma ? "gelu_pytorch_tanh" : "silu");
  if (gemma) {
    // Gemma's legacy "gelu" means the tanh approximation (transformers rewrites it).
    if (act != "gelu_pytorch_tanh" && act != "gelu" && act != "gelu_new" && act != "gelu_fast")
      unsupported(path + ": hidden_act \"" + act + "\" is not supported for gemma");
    c.activation = Activation::gelu_tanh;
    c.norm_weight_offset = 1.0f;
    c.scale_embeddings = true;
    if (f.boolean("use_bidirectional_attention", false))
      unsupported(path + ": use_bidirectional_attention is not supported");
  } else {
    if (act != "silu" && act != "swish") unsupported(path + ": hidden_act \"" + act + "\" is not supported");
    c.activation = Activation::silu;
  }

  // Sliding-window attention is not implemented; contexts are capped at the window,
  // where full attention is exactly what the window computes.
  if (type == "mistral" || (type == "qwen2" && f.boolean("use_sliding_window", false))) {
    c.sliding_window = int32_t(f.integer("sliding_window", int64_t(0), 0));
    if (c.sliding_window > 0 && c.sliding_window < c.max_position_embeddings)
      c.max_position_embeddings = c.sliding_window;
  }

  // EOS: generation_config.json is what transformers' generate() uses; config.json's
  // ids are added so either file is enough.
  const std::string gen_path = model_dir + "/generation_config.json";
  std::vector<int32_t> eos;
  int32_t bos = -1;
  if (is_file(gen_path)) {
    const Json gen = read_json_file(gen_path);
    Fields g(gen, gen_path);
    eos = g.id_list("eos_token_id");
    std::vector<int32_t> b = g.id_list("bos_token_id");
    if (!b.empty()) bos = b[0];
  }
  append_unique(eos, f.id_list("eos_token_id"));
  if (bos < 0) {
    std::vector<int32_t> b = f.id_list("bos_token_id");
    if (!b.empty()) bos = b[0];
  }
  for (int32_t id : eos) {
    if (id >= c.vocab_size)
      load_error(path + ": eos_token_id " + std::to_string(id) + " is outside the vocabulary (" +
                 std::to_string(c.vocab_size) + ")");
  }
  c.eos_token_ids = eos;
  c.bos_token_id = bos < c.vocab_size ? bos : -1;
  return c;
}

RopeConfig rope_config_make(const ModelConfig& c) {
  RopeConfig r;
  r.head_dim = c.head_dim;
  r.rotary_dim = c.head_dim;
  const int32_t dim = r.rotary_dim;
  const float base = c.rope_theta;
  r.inv_freq.resize(size_t(dim / 2));
  // transformers: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all in f32
  // (a python scalar over an f32 tensor computes in f32; 1.0 / t is reciprocal).
  for (int32_t i = 0; i < dim / 2; ++i) {
    float e = float(2 * i) / float(dim);
    r.inv_freq[size_t(i)] = 1.0f / std::pow(base, e);
  }
  const RopeScaling& s = c.rope_scaling;
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
