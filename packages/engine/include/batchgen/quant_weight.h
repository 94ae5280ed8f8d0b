// Quantized linear weights: the one representation every quantized checkpoint is
// turned into at load (Hugging Face FP8, AWQ, GPTQ, bitsandbytes NF4, GGUF Q4_0 /
// Q4_K, and bf16 weights quantized by --quantize fp8), held on the host until a
// backend takes it (Backend::quant_upload).
//
// A weight is [rows = out features, cols = in features] like a dense one. Along a
// row, consecutive groups of `group_size` columns share a scale (and an offset):
//   fp8_e4m3: w[r][k] = e4m3(data[r*K + k]) * scales[r][k / G]
//             (per-tensor and per-channel scales are G = K with the scale repeated
//              on every row; block scales [br x bc] are G = bc repeated over br rows)
//   int4:     w[r][k] = q * scales[r][g] + offsets[r][g], q in 0..15, g = k / G
//             (AWQ and GPTQ's (q - z) * s is offset = -z * s, exact for their f16
//              scales; GGUF's d * q - m is offset = -m, exactly ggml's arithmetic)
//   nf4:      w[r][k] = lut[q] * scales[r][g]   (bitsandbytes' absmax times its 16 values)
// 4-bit data holds two columns a byte, row-major [rows, cols / 2]: column 2i in the
// low nibble of byte i, 2i + 1 in the high one.
//
// GPTQ with act-order (desc_act) groups columns that are not adjacent: then
// `k_perm` is set and stored column j holds input column k_perm[j], so the product
// is x[:, k_perm] @ stored^T. Rows of several projections (q, k and v) concatenate
// into one weight when their format, group size and k_perm agree.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace bg {

enum class QuantFormat : uint8_t { fp8_e4m3, int4, nf4 };
const char* quant_format_name(QuantFormat f);  // "fp8_e4m3", "int4", "nf4"

struct QuantWeight {
  QuantFormat format = QuantFormat::int4;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t group_size = 0;         // columns per scale; divides cols for 4-bit, may not for fp8
  std::vector<uint8_t> data;      // fp8: rows * cols bytes; 4-bit: rows * cols / 2
  std::vector<float> scales;      // [rows, groups()]
  std::vector<float> offsets;     // int4 only: [rows, groups()]
  std::vector<float> lut;         // nf4 only: the 16 values
  std::vector<int32_t> k_perm;    // empty, or [cols]: stored column j is input column k_perm[j]
  std::string source;             // where it came from, for reports: "AWQ", "GPTQ act-order", "GGUF Q4_K", ...

  int64_t groups() const { return (cols + group_size - 1) / group_size; }
  // Bytes the packed form takes (data, scales, offsets, lut, k_perm).
  int64_t bytes() const;
};

// A weight of this format and shape with zeroed data, scales (and offsets) of
// the sizes above, for a reader or quantizer to fill in.
QuantWeight quant_weight_make(QuantFormat format, int64_t rows, int64_t cols, int64_t group_size, std::string source);

// Throws EngineError(internal) when `w` breaks the invariants above (sizes, nibble
// packing needing an even cols, a k_perm that is not a permutation). Loaders call it
// on every weight they make, so a layout bug is an error, not wrong numbers.
void quant_validate(const QuantWeight& w, const std::string& what);

// Rows [row0, row0 + n) of w in f32, in input column order (k_perm undone): out is
// n * cols floats. The values are exactly the formulas above, in f32.
void quant_dequantize_rows(const QuantWeight& w, int64_t row0, int64_t n, float* out);

// Appends b's rows under a's (fusing q/k/v or gate/up). Throws EngineError(unsupported)
// naming `what` when format, cols, group size, lookup table or k_perm differ.
void quant_append_rows(QuantWeight& a, const QuantWeight& b, const std::string& what);

// Reorders rows: row i becomes the old row src_of[i] (GGUF's q/k row permutation undone).
void quant_reorder_rows(QuantWeight& w, const std::vector<int64_t>& src_of);

// The e4m3 (fn: no infinities, 0x7F NaN) value of a byte, and the byte nearest to
// x (ties to even), saturating at +-448 as the quantizers clamp before casting.
float e4m3_to_f32(uint8_t b);
uint8_t f32_to_e4m3(float x);

// --quantize fp8: per output channel, scale = max|w[r]| / 448 (1 for an all-zero
// row), data = e4m3(w / scale). The same operations as the Python reference
// (tools/quant_reference.py), so both sides hold the same weights.
QuantWeight quant_fp8_per_channel(const float* w, int64_t rows, int64_t cols);

// Our int4 by round to nearest over groups of `group_size` columns (asymmetric:
// scale = (max - min) / 15, zero point = round(-min / scale) clamped to 0..15,
// offset = -zero * scale). For round-trip tests and as the reference packer.
QuantWeight quant_int4_rtn(const float* w, int64_t rows, int64_t cols, int64_t group_size);

// The 4-bit value at (row r, stored column j) of a 4-bit weight.
inline uint8_t quant_nibble(const QuantWeight& w, int64_t r, int64_t j) {
  const uint8_t b = w.data[size_t((r * w.cols + j) / 2)];
  return (j & 1) ? uint8_t(b >> 4) : uint8_t(b & 0x0F);
}

}  // namespace bg
