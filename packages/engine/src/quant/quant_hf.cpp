// quantization_config, the dispatch to each method's reader, and the FP8 reader
// (the layouts are in quant_hf.h).
#include "quant/quant_hf.h"

#include <algorithm>
#include <cstring>

#include "backend/dtype_convert.h"
#include "model/json.h"

namespace bg {
namespace {

[[noreturn]] void load_error(const std::string& msg) { throw EngineError(ErrorCode::model_load, msg); }
[[noreturn]] void unsupported(const std::string& msg) { throw EngineError(ErrorCode::unsupported, msg); }

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string str_field(const Json& qc, const char* key, const std::string& fallback) {
  const Json* v = qc.find_value(key);
  return v && v->is_string() ? v->as_string() : fallback;
}

int64_t int_field(const Json& qc, const char* key, int64_t fallback, const std::string& path) {
  const Json* v = qc.find_value(key);
  if (!v) return fallback;
  if (!v->is_integer()) load_error(path + ": quantization_config." + key + " must be an integer");
  return v->as_int();
}

bool bool_field(const Json& qc, const char* key, bool fallback) {
  const Json* v = qc.find_value(key);
  return v && v->is_bool() ? v->as_bool() : fallback;
}

// compressed-tensors (llm-compressor): runs only when every config group quantizes
// weights to 8-bit floats per tensor, channel or block; the tensors are then
// the same as fbgemm_fp8's.
void check_compressed_tensors(const Json& qc, const std::string& path) {
  const std::string what = path + ": compressed-tensors checkpoint";
  const Json* groups = qc.find_value("config_groups");
  if (!groups || !groups->is_object() || groups->members().empty()) unsupported(what + " without config_groups");
  for (const auto& [name, group] : groups->members()) {
    const Json* w = group.find_value("weights");
    if (!w) unsupported(what + ": group \"" + name + "\" has no weight quantization");
    const std::string type = str_field(*w, "type", "?"), strategy = str_field(*w, "strategy", "?");
    const int64_t bits = int_field(*w, "num_bits", 0, path);
    if (type != "float" || bits != 8 || (strategy != "tensor" && strategy != "channel" && strategy != "block"))
      unsupported(what + ": group \"" + name + "\" quantizes weights to " + std::to_string(bits) + "-bit " + type +
                  " per " + strategy + "; only FP8 (8-bit float) weights per tensor, channel or block are supported");
  }
}

}  // namespace

std::string QuantScheme::describe() const {
  const std::string g = group_size < 0 ? " per channel" : " g" + std::to_string(group_size);
  switch (method) {
    case QuantMethod::none: return "none";
    case QuantMethod::fp8:
      return "FP8 e4m3 (" + name + (fp8_block.size() == 2 ? ", block " + std::to_string(fp8_block[0]) + "x" +
                                                               std::to_string(fp8_block[1])
                                                         : "") + ")";
    case QuantMethod::awq: return "AWQ int4" + g;
    case QuantMethod::gptq: return "GPTQ int4" + g;
    case QuantMethod::bnb_nf4: return "bitsandbytes NF4";
  }
  return name;
}

QuantScheme quant_scheme_parse(const Json* qc, const std::string& path) {
  QuantScheme s;
  if (!qc) return s;
  if (!qc->is_object()) load_error(path + ": quantization_config must be an object");
  s.name = str_field(*qc, "quant_method", "");
  const std::string where = path + ": quantization_config";
  if (s.name == "fp8" || s.name == "fbgemm_fp8" || s.name == "compressed-tensors") {
    s.method = QuantMethod::fp8;
    if (s.name == "compressed-tensors") check_compressed_tensors(*qc, path);
    if (const Json* b = qc->find_value("weight_block_size")) {
      if (!b->is_array() || b->items().size() != 2 || !b->items()[0].is_integer() || !b->items()[1].is_integer() ||
          b->items()[0].as_int() <= 0 || b->items()[1].as_int() <= 0)
        load_error(where + ".weight_block_size must be two positive integers");
      s.fp8_block = {b->items()[0].as_int(), b->items()[1].as_int()};
    }
    if (str_field(*qc, "scale_fmt", "") == "ue8m0")
      unsupported(where + ": FP8 scales in UE8M0 (scale_fmt \"ue8m0\") are not supported; float32 scales are");
    return s;
  }
  if (s.name == "awq" || s.name == "gptq") {
    const bool awq = s.name == "awq";
    s.method = awq ? QuantMethod::awq : QuantMethod::gptq;
    const int64_t bits = int_field(*qc, awq ? "bits" : "bits", 4, path);
    if (bits != 4)
      unsupported(where + ": " + s.name + " with " + std::to_string(bits) + "-bit weights is not supported (4-bit is)");
    s.group_size = int_field(*qc, "group_size", 128, path);
    if (s.group_size == 0 || s.group_size < -1 || (awq && s.group_size < 0))
      load_error(where + ".group_size " + std::to_string(s.group_size) + " is not a group size");
    if (awq) {
      const std::string version = str_field(*qc, "version", "gemm");
      if (version != "gemm" && version != "GEMM")
        unsupported(where + ": AWQ version \"" + version + "\" is not supported (the \"gemm\" packing is)");
      if (!bool_field(*qc, "zero_point", true))
        unsupported(where + ": AWQ without zero points (zero_point false) is not supported");
    } else {
      const std::string format = str_field(*qc, "checkpoint_format", "gptq");
      if (format != "gptq" && format != "gptq_v2")
        unsupported(where + ": GPTQ checkpoint_format \"" + format + "\" is not supported (\"gptq\" and \"gptq_v2\" are)");
      if (bool_field(*qc, "is_marlin_format", false))
        unsupported(where + ": GPTQ in Marlin format (is_marlin_format) is not supported");
      s.gptq_zeros_minus_one = format == "gptq";
    }
    return s;
  }
  if (s.name == "bitsandbytes") {
    if (bool_field(*qc, "load_in_8bit", false))
      unsupported(where + ": bitsandbytes 8-bit (load_in_8bit, LLM.int8) is not supported; 4-bit NF4 is");
    if (!bool_field(*qc, "load_in_4bit", false))
      unsupported(where + ": a bitsandbytes config that is neither load_in_4bit nor load_in_8bit is not supported");
    const std::string type = str_field(*qc, "bnb_4bit_quant_type", "fp4");
    if (type != "nf4")
      unsupported(where + ": bitsandbytes 4-bit \"" + type + "\" (bnb_4bit_quant_type) is not supported; nf4 is");
    s.method = QuantMethod::bnb_nf4;
    return s;
  }
  unsupported(where + ": quant_method \"" + s.name +
              "\" is not supported (fp8, fbgemm_fp8, compressed-tensors FP8, awq, gptq and bitsandbytes nf4 are)");
}

const SafetensorsTensor& quant_tensor(const SafetensorsSet& st, const std::string& name, const char* dtype,
                                      const std::vector<int64_t>& shape) {
  const SafetensorsTensor& t = st.get(name);
  if (t.st_dtype != dtype)
    load_error(t.file + ": tensor '" + name + "' has dtype " + t.st_dtype + ", expected " + dtype);
  if (t.shape != shape)
    load_error(t.file + ": tensor '" + name + "' has shape " + shape_string(t.shape) + ", expected " +
               shape_string(shape));
  return t;
}

std::vector<float> quant_floats(const SafetensorsTensor& t) {
  if (!t.supported)
    load_error(t.file + ": tensor '" + t.name + "' has dtype " + t.st_dtype + "; expected F32, F16 or BF16");
  std::vector<float> out(size_t(t.numel()));
  const char* p = static_cast<const char*>(t.data);
  for (size_t i = 0; i < out.size(); ++i) {
    if (t.dtype == DType::f32) {
      std::memcpy(&out[i], p + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      out[i] = t.dtype == DType::bf16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
  }
  return out;
}

std::optional<QuantWeight> quant_linear_load(const SafetensorsSet& st, const QuantScheme& s,
                                             const std::string& prefix, int64_t rows, int64_t cols) {
  if (!s.quantized()) return std::nullopt;
  const SafetensorsTensor* w = st.find(prefix + ".weight");
  // A module the quantizer skipped (modules_to_not_convert, lm_head) keeps a float weight.
  if (w && w->supported) return std::nullopt;
  QuantWeight q;
  switch (s.method) {
    case QuantMethod::fp8: q = quant_load_fp8(st, s, prefix, rows, cols); break;
    case QuantMethod::awq: q = quant_load_awq(st, s, prefix, rows, cols); break;
    case QuantMethod::gptq: q = quant_load_gptq(st, s, prefix, rows, cols); break;
    case QuantMethod::bnb_nf4: q = quant_load_nf4(st, prefix, rows, cols); break;
    case QuantMethod::none: return std::nullopt;
  }
  quant_validate(q, prefix);
  return q;
}

QuantWeight quant_load_fp8(const SafetensorsSet& st, const QuantScheme& s, const std::string& prefix,
                           int64_t rows, int64_t cols) {
  const SafetensorsTensor& w = quant_tensor(st, prefix + ".weight", "F8_E4M3", {rows, cols});
  const SafetensorsTensor* scale = st.find(prefix + ".weight_scale_inv");
  if (!scale) scale = st.find(prefix + ".weight_scale");
  if (!scale)
    load_error(w.file + ": FP8 tensor '" + prefix + ".weight' has neither '" + prefix + ".weight_scale_inv' nor '" +
               prefix + ".weight_scale'");
  const std::vector<float> grid = quant_floats(*scale);
  // The scale grid's shape says per tensor, per channel or per block.
  int64_t br = 0, bc = 0;
  const std::vector<int64_t>& sh = scale->shape;
  const int64_t n = scale->numel();
  if (n == 1) {
    br = rows, bc = cols;
  } else if ((sh.size() == 1 && sh[0] == rows) || (sh.size() == 2 && sh[0] == rows && sh[1] == 1)) {
    br = 1, bc = cols;
  } else if (sh.size() == 2 && s.fp8_block.size() == 2 && sh[0] == (rows + s.fp8_block[0] - 1) / s.fp8_block[0] &&
             sh[1] == (cols + s.fp8_block[1] - 1) / s.fp8_block[1]) {
    br = s.fp8_block[0], bc = s.fp8_block[1];
  } else {
    load_error(scale->file + ": FP8 scale '" + scale->name + "' has shape " + shape_string(sh) + ", which is neither " +
               "per tensor, per channel [" + std::to_string(rows) + ", 1] nor a block grid of weight_block_size");
  }
  QuantWeight q = quant_weight_make(
      QuantFormat::fp8_e4m3, rows, cols, bc,
      "FP8 e4m3 (" + s.name +
          (n == 1 ? ", per tensor)" : br == 1 ? ", per channel)" : ", block " + std::to_string(br) + "x" + std::to_string(bc) + ")"));
  const uint8_t* src = static_cast<const uint8_t*>(w.data);
  q.data.assign(src, src + rows * cols);
  const int64_t groups = q.groups(), grid_cols = (cols + bc - 1) / bc;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) q.scales[size_t(r * groups + g)] = grid[size_t((r / br) * grid_cols + g)];
  }
  return q;
}

}  // namespace bg
