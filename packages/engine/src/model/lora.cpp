// peft LoRA adapters: adapter_config.json checks, adapter_model.safetensors
// reading, and the stacked slots the forward pass reads (model/lora.h).
#include "model/lora.h"


#include <cmath>
#include <cstring>

#include "backend/dtype_convert.h"
#include "model/json.h"
#include "model/model_files.h"
#include "model/model.h"
#include "model/safetensors.h"

namespace bg {
namespace {

[[noreturn]] void load_error(const std::string& msg) { throw EngineError(ErrorCode::model_load, msg); }
[[noreturn]] void unsupported(const std::string& msg) { throw EngineError(ErrorCode::unsupported, msg); }

constexpr const char* kTargetNames[kLoraTargets] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                    "gate_proj", "up_proj", "down_proj"};

// The target a peft module name (or a dotted path ending in one) names, or -1.
int target_index(const std::string& module) {
  const size_t dot = module.rfind('.');
  const std::string last = dot == std::string::npos ? module : module.substr(dot + 1);
  for (int t = 0; t < kLoraTargets; ++t)
    if (last == kTargetNames[t]) return t;
  return -1;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// A config value that changes the model in a way this engine does not implement:
// refused when present and not its neutral value.
void refuse_if(bool set, const std::string& where, const std::string& what) {
  if (set) unsupported(where + ": " + what + " is not supported");
}

bool nonempty(const Json* j) {
  if (!j || j->is_null()) return false;
  if (j->is_array()) return !j->items().empty();
  if (j->is_object()) return !j->members().empty();
  if (j->is_bool()) return j->as_bool();
  if (j->is_string()) return !j->as_string().empty();
  return true;
}

float f32_at(const SafetensorsTensor& t, int64_t i) {
  const char* p = static_cast<const char*>(t.data);
  if (t.dtype == DType::f32) {
    float f;
    std::memcpy(&f, p + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p + 2 * i, 2);
  return t.dtype == DType::bf16 ? bf16_to_f32(h) : f16_to_f32(h);
}

// Elements [i0, i0 + n) of `t` times `s` into dst as `dd` (f32 or bf16): the f32
// product rounds once, as the backend's upload of an f32 copy rounds it.
void put_scaled(const SafetensorsTensor& t, int64_t i0, int64_t n, float s, DType dd, char* dst) {
  if (dd == DType::f32) {
    for (int64_t i = 0; i < n; ++i) {
      const float v = f32_at(t, i0 + i) * s;
      std::memcpy(dst + 4 * i, &v, 4);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t h = f32_to_bf16(f32_at(t, i0 + i) * s);
      std::memcpy(dst + 2 * i, &h, 2);
    }
  }
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

const char* lora_target_name(LoraTarget t) { return kTargetNames[int(t)]; }

std::array<int64_t, 2> lora_target_dims(const ModelConfig& c, LoraTarget t) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, qw = int64_t(c.num_heads) * c.head_dim,
                kw = int64_t(c.num_kv_heads) * c.head_dim;
  switch (t) {
    case LoraTarget::q: return {H, qw};
    case LoraTarget::k: case LoraTarget::v: return {H, kw};
    case LoraTarget::o: return {qw, H};
    case LoraTarget::gate: case LoraTarget::up: return {H, I};
    case LoraTarget::down: return {I, H};
  }
  return {0, 0};
}

LoraAdapterInfo lora_adapter_inspect(const std::string& name, const std::string& path, const ModelConfig& base) {
  (void)base;
  LoraAdapterInfo info;
  info.name = name;
  info.path = path;
  const std::string cfg_path = path + "/adapter_config.json";
  if (!is_regular_file(cfg_path))
    load_error("adapter '" + name + "': no adapter_config.json in " + path + " (a peft LoRA adapter directory)");
  const Json cfg = read_json_object_file(cfg_path);

  const Json* type = cfg.find_value("peft_type");
  if (type && (!type->is_string() || type->as_string() != "LORA"))
    unsupported(cfg_path + ": peft_type " + (type->is_string() ? type->as_string() : "?") +
                " is not supported (only LORA adapters)");
  const Json* r = cfg.find_value("r");
  if (!r || !r->is_integer() || r->as_int() < 1 || r->as_int() > 256)
    load_error(cfg_path + ": r must be an integer in [1, 256]");
  info.rank = int32_t(r->as_int());
  const Json* alpha = cfg.find_value("lora_alpha");
  if (alpha && !alpha->is_number()) load_error(cfg_path + ": lora_alpha must be a number");
  info.alpha = alpha ? float(alpha->as_double()) : 8.0f;  // peft's default
  const Json* rs = cfg.find_value("use_rslora");
  info.rslora = rs && rs->is_bool() && rs->as_bool();
  info.scale = info.rslora ? float(double(info.alpha) / std::sqrt(double(info.rank)))
                           : float(double(info.alpha) / double(info.rank));

  // What changes the model beyond W + scale * B A on the listed projections.
  if (const Json* m = cfg.find_value("modules_to_save"); nonempty(m)) {
    std::vector<std::string> names;
    if (m->is_array())
      for (const Json& x : m->items()) names.push_back(x.is_string() ? x.as_string() : "?");
    unsupported(cfg_path + ": modules_to_save (" + join(names) +
                ") is not supported: the engine serves LoRA updates on a shared base, not replaced modules");
  }
  refuse_if(nonempty(cfg.find_value("use_dora")), cfg_path, "use_dora (DoRA)");
  const Json* bias = cfg.find_value("bias");
  refuse_if(bias && !(bias->is_string() && bias->as_string() == "none"), cfg_path, "bias other than \"none\"");
  refuse_if(nonempty(cfg.find_value("lora_bias")), cfg_path, "lora_bias");
  refuse_if(nonempty(cfg.find_value("fan_in_fan_out")), cfg_path, "fan_in_fan_out");
  refuse_if(nonempty(cfg.find_value("rank_pattern")), cfg_path, "rank_pattern (per-module ranks)");
  refuse_if(nonempty(cfg.find_value("alpha_pattern")), cfg_path, "alpha_pattern (per-module alphas)");
  refuse_if(nonempty(cfg.find_value("layer_replication")), cfg_path, "layer_replication");
  refuse_if(nonempty(cfg.find_value("trainable_token_indices")), cfg_path, "trainable_token_indices");
  refuse_if(nonempty(cfg.find_value("target_parameters")), cfg_path, "target_parameters");
  // peft variants that change how the update is computed (activated LoRA, QA-LoRA,
  // routing between adapters, ...).
  for (const char* key : {"alora_invocation_tokens", "use_qalora", "use_bdlora", "arrow_config", "kasa_config",
                          "velora_config", "monteclora_config"})
    refuse_if(nonempty(cfg.find_value(key)), cfg_path, key);

  const Json* tm = cfg.find_value("target_modules");
  if (!tm) load_error(cfg_path + ": target_modules is missing");
  if (tm->is_string()) {
    if (tm->as_string() != "all-linear")
      unsupported(cfg_path + ": target_modules as a pattern (\"" + tm->as_string() +
                  "\") is not supported; list the modules (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, "
                  "down_proj) or use \"all-linear\"");
    info.targets.fill(true);
  } else if (tm->is_array()) {
    std::vector<std::string> bad;
    for (const Json& x : tm->items()) {
      const int t = x.is_string() ? target_index(x.as_string()) : -1;
      if (t < 0) {
        bad.push_back(x.is_string() ? x.as_string() : "?");
      } else {
        info.targets[size_t(t)] = true;
      }
    }
    if (!bad.empty())
      unsupported(cfg_path + ": target_modules " + join(bad) +
                  " not supported (the engine adapts q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)");
  } else {
    load_error(cfg_path + ": target_modules must be a list of module names");
  }
  bool any = false;
  for (bool b : info.targets) any = any || b;
  if (!any) load_error(cfg_path + ": target_modules is empty");
  if (!is_regular_file(path + "/adapter_model.safetensors")) {
    if (is_regular_file(path + "/adapter_model.bin"))
      unsupported("adapter '" + name + "': " + path +
                  " has adapter_model.bin (pickle); only adapter_model.safetensors is read (peft's default since 0.7)");
    load_error("adapter '" + name + "': no adapter_model.safetensors in " + path);
  }
  return info;
}

// --- the stack ------------------------------------------------------------------

int64_t LoraStack::slot_bytes(const ModelConfig& base, int32_t rank, DType weight_dtype) {
  int64_t per_layer = 0;
  for (int t = 0; t < kLoraTargets; ++t) {
    const auto d = lora_target_dims(base, LoraTarget(t));
    per_layer += int64_t(rank) * (d[0] + d[1]);
  }
  return per_layer * base.num_layers * int64_t(dtype_size(weight_dtype));
}

LoraStack::LoraStack(Backend& backend, const ModelConfig& base, int32_t slots, int32_t rank, int32_t max_tokens)
    : backend_(backend), dtype_(backend.weight_dtype()), slots_(slots), rank_(rank) {
  if (slots < 1 || rank < 1 || max_tokens < 1)
    throw EngineError(ErrorCode::invalid_argument, "a LoRA stack needs at least one slot, rank and token");
  if (dtype_ != DType::f32 && dtype_ != DType::bf16)
    throw EngineError(ErrorCode::internal, "LoRA slots in a weight dtype other than f32 or bf16");
  q_width_ = int64_t(base.num_heads) * base.head_dim;
  kv_width_ = int64_t(base.num_kv_heads) * base.head_dim;
  inter_ = base.intermediate_size;
  for (int t = 0; t < kLoraTargets; ++t) dims_[size_t(t)] = lora_target_dims(base, LoraTarget(t));
  slot_targets_.resize(size_t(slots));
  layers_.resize(size_t(base.num_layers));
  try {
    for (auto& layer : layers_) {
      for (int t = 0; t < kLoraTargets; ++t) {
        const auto d = lora_target_dims(base, LoraTarget(t));
        layer[size_t(t)].a = backend_.alloc(backend_.weight_dtype(), int64_t(slots) * rank, d[0]);
        layer[size_t(t)].b = backend_.alloc(backend_.weight_dtype(), int64_t(slots) * d[1], rank);
      }
    }
    tmp_ = backend_.alloc(DType::f32, max_tokens, rank);
  } catch (...) {
    release();
    throw;
  }
}

LoraStack::~LoraStack() { release(); }

void LoraStack::release() {
  for (auto& layer : layers_) {
    for (Pair& p : layer) {
      if (p.a.data) backend_.free(p.a);
      if (p.b.data) backend_.free(p.b);
    }
  }
  layers_.clear();
  if (tmp_.data) backend_.free(tmp_);
}

LoraTargets LoraStack::read(const LoraAdapterInfo& info, void* dst) const {
  if (info.rank > rank_) throw EngineError(ErrorCode::internal, "LoRA adapter's rank exceeds the stack's");
  const std::string file = info.path + "/adapter_model.safetensors";
  std::unique_ptr<SafetensorsFile> st = SafetensorsFile::open(file);
  const int64_t num_layers = int64_t(layers_.size());
  const int64_t r = info.rank;
  struct Pair {
    const SafetensorsTensor *a = nullptr, *b = nullptr;
  };
  std::vector<std::array<Pair, kLoraTargets>> found(layers_.size());
  for (const SafetensorsTensor& t : st->tensors()) {
    const std::string& n = t.name;
    // A multimodal base's image side never sees a text prompt.
    if (n.find("vision_tower.") != std::string::npos || n.find("multi_modal_projector.") != std::string::npos) continue;
    // ...layers.<l>.(self_attn|mlp).<module>.lora_(A|B).weight
    const size_t lp = n.find("layers.");
    const bool is_a = n.size() > 14 && n.compare(n.size() - 14, 14, ".lora_A.weight") == 0;
    const bool is_b = n.size() > 14 && n.compare(n.size() - 14, 14, ".lora_B.weight") == 0;
    if (lp == std::string::npos || !(is_a || is_b))
      unsupported(file + ": tensor '" + n + "' is not a LoRA A/B weight of a decoder layer (not supported)");
    const size_t num0 = lp + 7, num1 = n.find('.', num0);
    int64_t layer = -1;
    if (num1 != std::string::npos && num1 > num0) {
      try {
        layer = std::stoll(n.substr(num0, num1 - num0));
      } catch (const std::exception&) {
        layer = -1;
      }
    }
    const std::string module = n.substr(num1 == std::string::npos ? 0 : num1 + 1,
                                        num1 == std::string::npos ? 0 : n.size() - 14 - num1 - 1);
    const int target = target_index(module);
    const bool expected_parent = module.rfind("self_attn.", 0) == 0 || module.rfind("mlp.", 0) == 0;
    if (layer < 0 || layer >= num_layers)
      load_error(file + ": tensor '" + n + "' names a layer outside the base model's " + std::to_string(num_layers));
    if (target < 0 || !expected_parent)
      unsupported(file + ": tensor '" + n + "' adapts module '" + module + "', which is not supported");
    if (!t.supported) load_error(file + ": tensor '" + n + "' has dtype " + t.st_dtype + "; expected F32, BF16 or F16");
    const auto& dims = dims_[size_t(target)];
    const std::vector<int64_t> want = is_a ? std::vector<int64_t>{r, dims[0]} : std::vector<int64_t>{dims[1], r};
    if (t.shape != want)
      load_error(file + ": tensor '" + n + "' has shape " + shape_string(t.shape) + ", expected " + shape_string(want) +
                 " (r = " + std::to_string(r) + " and the base model's projection)");
    const SafetensorsTensor*& slot = is_a ? found[size_t(layer)][size_t(target)].a : found[size_t(layer)][size_t(target)].b;
    if (slot) load_error(file + ": tensor '" + n + "' appears twice");
    slot = &t;
  }
  LoraTargets targets{};
  bool any = false;
  for (size_t l = 0; l < found.size(); ++l) {
    for (int t = 0; t < kLoraTargets; ++t) {
      const Pair& p = found[l][size_t(t)];
      if (!p.a != !p.b)
        load_error(file + ": layer " + std::to_string(l) + " " + kTargetNames[t] + " has lora_" + (p.a ? "A" : "B") +
                   " without lora_" + (p.a ? "B" : "A"));
      any = any || p.a;
    }
  }
  if (!any) load_error(file + ": no LoRA weights");

  // The slot's bytes in load()'s order; padding to the stack's rank adds nothing.
  const int64_t R = rank_;
  const size_t esz = dtype_size(dtype_);
  char* out = static_cast<char*>(dst);
  for (size_t l = 0; l < found.size(); ++l) {
    for (int t = 0; t < kLoraTargets; ++t) {
      const Pair& p = found[l][size_t(t)];
      const int64_t K = dims_[size_t(t)][0], N = dims_[size_t(t)][1];
      if (!p.a) {
        std::memset(out, 0, size_t((R * K + N * R)) * esz);
        out += size_t(R * K + N * R) * esz;
        continue;
      }
      targets[size_t(t)] = true;
      put_scaled(*p.a, 0, r * K, 1.0f, dtype_, out);
      std::memset(out + size_t(r * K) * esz, 0, size_t((R - r) * K) * esz);
      out += size_t(R * K) * esz;
      for (int64_t row = 0; row < N; ++row) {
        put_scaled(*p.b, row * r, r, info.scale, dtype_, out);
        std::memset(out + size_t(r) * esz, 0, size_t(R - r) * esz);
        out += size_t(R) * esz;
      }
    }
  }
  return targets;
}

void LoraStack::load(int32_t slot, const void* src, const LoraTargets& targets) {
  if (slot < 0 || slot >= slots_) throw EngineError(ErrorCode::internal, "LoRA slot out of range");
  LoraTargets& had = slot_targets_[size_t(slot)];
  for (int t = 0; t < kLoraTargets; ++t) users_[size_t(t)] -= had[size_t(t)] ? 1 : 0;
  had.fill(false);
  const char* p = static_cast<const char*>(src);
  const size_t esz = dtype_size(dtype_);
  for (auto& layer : layers_) {
    for (int t = 0; t < kLoraTargets; ++t) {
      Pair& dst = layer[size_t(t)];
      const int64_t K = dst.a.cols, N = dst.b.rows / slots_;
      backend_.upload_async(dst.a, int64_t(slot) * rank_, p, rank_);
      p += size_t(rank_ * K) * esz;
      backend_.upload_async(dst.b, int64_t(slot) * N, p, N);
      p += size_t(N * rank_) * esz;
    }
  }
  had = targets;
  for (int t = 0; t < kLoraTargets; ++t) users_[size_t(t)] += had[size_t(t)] ? 1 : 0;
}

void LoraStack::add(const StepTensors& step, int32_t layer, LoraTarget t, const Tensor& x, Tensor out) {
  if (users_[size_t(t)] == 0) return;
  const Pair& p = layers_[size_t(layer)][size_t(t)];
  Tensor tmp = tmp_;
  backend_.lora_add(x, p.a, p.b, rank_, step, tmp, out);
}

void LoraStack::apply(const StepTensors& step, int32_t layer, Site site, const Tensor& x, Tensor& out) {
  if (step.num_lora_segments == 0) return;
  switch (site) {
    case Site::qkv:
      add(step, layer, LoraTarget::q, x, out.col_slice(0, q_width_));
      add(step, layer, LoraTarget::k, x, out.col_slice(q_width_, kv_width_));
      add(step, layer, LoraTarget::v, x, out.col_slice(q_width_ + kv_width_, kv_width_));
      break;
    case Site::o: add(step, layer, LoraTarget::o, x, out); break;
    case Site::gate_up:
      add(step, layer, LoraTarget::gate, x, out.col_slice(0, inter_));
      add(step, layer, LoraTarget::up, x, out.col_slice(inter_, inter_));
      break;
    case Site::down: add(step, layer, LoraTarget::down, x, out); break;
  }
}

}  // namespace bg
