// bitsandbytes 4-bit NF4 weights (as transformers and QLoRA save them; layout in
// quant_hf.h) into our nf4: the same 16-value table and one absmax per block, the
// nibbles swapped into our order (bitsandbytes puts the first value of a byte in
// the high nibble). Nested (double-quantized) absmax is expanded to f32 here with
// bitsandbytes' own arithmetic: code[a] * nested_absmax[block] + offset, in f32.
#include <cmath>
#include <cstring>

#include "model/json.h"
#include "quant/quant_hf.h"

namespace bg {
namespace {

[[noreturn]] void load_error(const std::string& msg) { throw EngineError(ErrorCode::model_load, msg); }
[[noreturn]] void unsupported(const std::string& msg) { throw EngineError(ErrorCode::unsupported, msg); }

int64_t state_int(const Json& state, const char* key, const std::string& where) {
  const Json* v = state.find_value(key);
  if (!v || !v->is_integer() || v->as_int() <= 0) load_error(where + ": quant state has no positive \"" + key + "\"");
  return v->as_int();
}

}  // namespace

QuantWeight quant_load_nf4(const SafetensorsSet& st, const std::string& prefix, int64_t rows, int64_t cols) {
  const std::string wname = prefix + ".weight";
  const std::string state_name = wname + ".quant_state.bitsandbytes__nf4";
  if (!st.find(state_name)) {
    if (st.find(wname + ".quant_state.bitsandbytes__fp4"))
      unsupported("'" + wname + "' is bitsandbytes FP4; only NF4 is supported");
    load_error("'" + wname + "' has no '" + state_name + "' (a bitsandbytes 4-bit weight saves its state there)");
  }
  const SafetensorsTensor& state_t = st.get(state_name);
  if (state_t.st_dtype != "U8") load_error(state_t.file + ": '" + state_name + "' must be U8 (JSON bytes)");
  Json state;
  try {
    state = json_parse(static_cast<const char*>(state_t.data), state_t.nbytes);
  } catch (const std::invalid_argument& e) {
    load_error(state_t.file + ": '" + state_name + "' is not JSON: " + e.what());
  }
  const std::string where = state_t.file + ": '" + state_name + "'";
  const Json* type = state.find_value("quant_type");
  if (!type || !type->is_string() || type->as_string() != "nf4")
    unsupported(where + ": quant_type is not \"nf4\"");
  const Json* shape = state.find_value("shape");
  if (!shape || !shape->is_array() || shape->items().size() != 2 || !shape->items()[0].is_integer() ||
      shape->items()[0].as_int() != rows || !shape->items()[1].is_integer() || shape->items()[1].as_int() != cols)
    load_error(where + ": shape is not [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
  const int64_t block = state_int(state, "blocksize", where);
  if (cols % block != 0 || block % 2 != 0)
    unsupported(where + ": blocks of " + std::to_string(block) + " values that straddle rows of " +
                std::to_string(cols) + " are not supported");
  const int64_t n = rows * cols, nblocks = n / block;

  const SafetensorsTensor& packed = quant_tensor(st, wname, "U8", {n / 2, 1});
  const std::vector<float> lut = quant_floats(quant_tensor(st, wname + ".quant_map", "F32", {16}));
  std::vector<float> absmax;
  if (const Json* nested_block = state.find_value("nested_blocksize")) {
    // Double quantization (bnb_4bit_use_double_quant, QLoRA's default).
    if (!nested_block->is_integer() || nested_block->as_int() <= 0) load_error(where + ": bad nested_blocksize");
    const int64_t nb = nested_block->as_int();
    const Json* offset_v = state.find_value("nested_offset");
    if (!offset_v || !offset_v->is_number()) load_error(where + ": nested quant state has no nested_offset");
    const float offset = float(offset_v->as_double());
    const SafetensorsTensor& codes = quant_tensor(st, wname + ".absmax", "U8", {nblocks});
    const std::vector<float> nested_absmax =
        quant_floats(quant_tensor(st, wname + ".nested_absmax", "F32", {(nblocks + nb - 1) / nb}));
    const std::vector<float> nested_map = quant_floats(quant_tensor(st, wname + ".nested_quant_map", "F32", {256}));
    const uint8_t* c = static_cast<const uint8_t*>(codes.data);
    absmax.resize(size_t(nblocks));
    for (int64_t i = 0; i < nblocks; ++i) absmax[size_t(i)] = nested_map[c[i]] * nested_absmax[size_t(i / nb)] + offset;
  } else {
    absmax = quant_floats(quant_tensor(st, wname + ".absmax", "F32", {nblocks}));
  }

  QuantWeight q = quant_weight_make(QuantFormat::nf4, rows, cols, block, "bitsandbytes NF4");
  q.lut = lut;
  q.scales = std::move(absmax);  // blocks run along the row-major weight: [rows, cols / block]
  const uint8_t* src = static_cast<const uint8_t*>(packed.data);
  for (int64_t i = 0; i < n / 2; ++i) q.data[size_t(i)] = uint8_t((src[i] >> 4) | (src[i] << 4));
  return q;
}

}  // namespace bg
