// The quantized weight representation (batchgen/quant_weight.h): checks,
// dequantization, row concatenation, e4m3 conversions and the two quantizers the
// engine itself runs (--quantize fp8, and int4 round-to-nearest for tests).
#include "batchgen/quant_weight.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "batchgen/tensor.h"

namespace bg {
namespace {

[[noreturn]] void internal(const std::string& msg) { throw EngineError(ErrorCode::internal, msg); }

bool is_4bit(QuantFormat f) { return f != QuantFormat::fp8_e4m3; }

}  // namespace

const char* quant_format_name(QuantFormat f) {
  switch (f) {
    case QuantFormat::fp8_e4m3: return "fp8_e4m3";
    case QuantFormat::int4: return "int4";
    case QuantFormat::nf4: return "nf4";
  }
  return "?";
}

int64_t QuantWeight::bytes() const {
  return int64_t(data.size()) + 4 * int64_t(scales.size() + offsets.size() + lut.size() + k_perm.size());
}

QuantWeight quant_weight_make(QuantFormat format, int64_t rows, int64_t cols, int64_t group_size, std::string source) {
  QuantWeight q;
  q.format = format;
  q.rows = rows;
  q.cols = cols;
  q.group_size = group_size;
  q.source = std::move(source);
  q.data.assign(size_t(is_4bit(format) ? rows * cols / 2 : rows * cols), 0);
  q.scales.assign(size_t(rows * q.groups()), 0.0f);
  if (format == QuantFormat::int4) q.offsets.assign(q.scales.size(), 0.0f);
  return q;
}

void quant_validate(const QuantWeight& w, const std::string& what) {
  const std::string at = what + " (" + quant_format_name(w.format) + "): ";
  if (w.rows <= 0 || w.cols <= 0 || w.group_size <= 0) internal(at + "empty shape or group size");
  if (is_4bit(w.format)) {
    if (w.cols % 2 != 0) internal(at + "4-bit weights need an even number of columns");
    if (w.cols % w.group_size != 0 || w.group_size % 2 != 0)
      internal(at + "the group size must be even and divide the columns");
    if (int64_t(w.data.size()) != w.rows * w.cols / 2) internal(at + "packed data has the wrong size");
  } else if (int64_t(w.data.size()) != w.rows * w.cols) {
    internal(at + "fp8 data has the wrong size");
  }
  if (int64_t(w.scales.size()) != w.rows * w.groups()) internal(at + "scales have the wrong size");
  if (w.format == QuantFormat::int4 && w.offsets.size() != w.scales.size()) internal(at + "offsets have the wrong size");
  if (w.format != QuantFormat::int4 && !w.offsets.empty()) internal(at + "offsets belong to int4 only");
  if ((w.format == QuantFormat::nf4) != (w.lut.size() == 16)) internal(at + "a 16-value table belongs to nf4 only");
  if (!w.k_perm.empty()) {
    if (int64_t(w.k_perm.size()) != w.cols) internal(at + "k_perm has the wrong size");
    std::vector<char> seen(size_t(w.cols), 0);
    for (int32_t k : w.k_perm) {
      if (k < 0 || k >= w.cols || seen[size_t(k)]) internal(at + "k_perm is not a permutation");
      seen[size_t(k)] = 1;
    }
  }
}

void quant_dequantize_rows(const QuantWeight& w, int64_t row0, int64_t n, float* out) {
  const int64_t K = w.cols, G = w.group_size, groups = w.groups();
  const bool permuted = !w.k_perm.empty();
  static const std::vector<float> e4m3 = [] {
    std::vector<float> t(256);
    for (int b = 0; b < 256; ++b) t[size_t(b)] = e4m3_to_f32(uint8_t(b));
    return t;
  }();
  // The stored order first (into `out`, or a row buffer when columns move).
  thread_local std::vector<float> row;
  if (permuted && int64_t(row.size()) < K) row.resize(size_t(K));
  for (int64_t r = row0; r < row0 + n; ++r) {
    float* y = permuted ? row.data() : out + (r - row0) * K;
    const float* s = w.scales.data() + r * groups;
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t j0 = g * G, j1 = std::min(K, j0 + G);
      const float scale = s[g];
      if (w.format == QuantFormat::fp8_e4m3) {
        const uint8_t* q = w.data.data() + r * K;
        for (int64_t j = j0; j < j1; ++j) y[j] = e4m3[q[j]] * scale;
        continue;
      }
      const uint8_t* q = w.data.data() + (r * K + j0) / 2;  // j0 is even: G is
      if (w.format == QuantFormat::int4) {
        const float offset = w.offsets[size_t(r * groups + g)];
        for (int64_t j = j0; j < j1; j += 2, ++q) {
          y[j] = float(*q & 0x0F) * scale + offset;
          y[j + 1] = float(*q >> 4) * scale + offset;
        }
      } else {
        for (int64_t j = j0; j < j1; j += 2, ++q) {
          y[j] = w.lut[*q & 0x0F] * scale;
          y[j + 1] = w.lut[*q >> 4] * scale;
        }
      }
    }
    if (permuted) {
      float* dst = out + (r - row0) * K;
      for (int64_t j = 0; j < K; ++j) dst[w.k_perm[size_t(j)]] = row[size_t(j)];
    }
  }
}

void quant_append_rows(QuantWeight& a, const QuantWeight& b, const std::string& what) {
  auto refuse = [&](const std::string& why) {
    throw EngineError(ErrorCode::unsupported, what + ": the fused projections differ in " + why +
                                                  ", so they cannot share one quantized weight");
  };
  if (a.format != b.format) refuse(std::string("format (") + quant_format_name(a.format) + " and " +
                                   quant_format_name(b.format) + ")");
  if (a.cols != b.cols) refuse("input width");
  if (a.group_size != b.group_size) refuse("group size (" + std::to_string(a.group_size) + " and " +
                                           std::to_string(b.group_size) + ")");
  if (a.lut != b.lut) refuse("their nf4 lookup tables");
  if (a.k_perm != b.k_perm) refuse("act-order column order (g_idx)");
  a.rows += b.rows;
  a.data.insert(a.data.end(), b.data.begin(), b.data.end());
  a.scales.insert(a.scales.end(), b.scales.begin(), b.scales.end());
  a.offsets.insert(a.offsets.end(), b.offsets.begin(), b.offsets.end());
  if (a.source != b.source) a.source += " + " + b.source;
}

void quant_reorder_rows(QuantWeight& w, const std::vector<int64_t>& src_of) {
  if (int64_t(src_of.size()) != w.rows) internal("quant_reorder_rows: wrong number of rows");
  const size_t row_bytes = w.data.size() / size_t(w.rows), groups = size_t(w.groups());
  QuantWeight old = w;
  for (size_t i = 0; i < src_of.size(); ++i) {
    const size_t s = size_t(src_of[i]);
    std::memcpy(&w.data[i * row_bytes], &old.data[s * row_bytes], row_bytes);
    std::memcpy(&w.scales[i * groups], &old.scales[s * groups], groups * 4);
    if (!w.offsets.empty()) std::memcpy(&w.offsets[i * groups], &old.offsets[s * groups], groups * 4);
  }
}

float e4m3_to_f32(uint8_t b) {
  const int sign = b >> 7, exp = (b >> 3) & 0x0F, mant = b & 0x07;
  float v;
  if (exp == 0x0F && mant == 0x07) return std::nanf("");
  if (exp == 0) {
    v = std::ldexp(float(mant), -9);  // subnormal: mant / 8 * 2^-6
  } else {
    v = std::ldexp(float(8 + mant), exp - 10);  // (1 + mant / 8) * 2^(exp - 7)
  }
  return sign ? -v : v;
}

uint8_t f32_to_e4m3(float x) {
  if (std::isnan(x)) return 0x7F;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0;
  const float a = std::fabs(x);
  if (a >= 448.0f) return sign | 0x7E;
  if (a < 0x1p-6f) return sign | uint8_t(std::nearbyint(a * 512.0f));  // subnormals are steps of 2^-9
  int e;
  std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1): the unbiased exponent is e - 1
  const int q = int(std::nearbyint(std::ldexp(a, 4 - e)));  // 8..16 (16 carries into the next exponent)
  const int bits = ((e - 1 + 7) << 3) + (q - 8);
  return sign | uint8_t(std::min(bits, 0x7E));
}

QuantWeight quant_fp8_per_channel(const float* w, int64_t rows, int64_t cols) {
  QuantWeight q = quant_weight_make(QuantFormat::fp8_e4m3, rows, cols, cols, "--quantize fp8 (per-channel)");
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = w + r * cols;
    float amax = 0;
    for (int64_t k = 0; k < cols; ++k) amax = std::max(amax, std::fabs(row[k]));
    const float scale = amax > 0 ? amax / 448.0f : 1.0f;
    q.scales[size_t(r)] = scale;
    for (int64_t k = 0; k < cols; ++k) q.data[size_t(r * cols + k)] = f32_to_e4m3(row[k] / scale);
  }
  return q;
}

QuantWeight quant_int4_rtn(const float* w, int64_t rows, int64_t cols, int64_t group_size) {
  if (cols % 2 || group_size <= 0 || cols % group_size)
    throw EngineError(ErrorCode::invalid_argument, "int4 needs an even width that the group size divides");
  QuantWeight q = quant_weight_make(QuantFormat::int4, rows, cols, group_size, "int4 round-to-nearest");
  const int64_t groups = cols / group_size;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const float* x = w + r * cols + g * group_size;
      const auto [lo, hi] = std::minmax_element(x, x + group_size);
      const float mn = std::min(*lo, 0.0f), mx = std::max(*hi, 0.0f);
      const float scale = mx > mn ? (mx - mn) / 15.0f : 1.0f;
      const float zero = std::clamp(std::nearbyint(-mn / scale), 0.0f, 15.0f);
      q.scales[size_t(r * groups + g)] = scale;
      q.offsets[size_t(r * groups + g)] = -zero * scale;
      for (int64_t i = 0; i < group_size; ++i) {
        const int64_t j = g * group_size + i;
        const int v = int(std::clamp(std::nearbyint(x[i] / scale) + zero, 0.0f, 15.0f));
        q.data[size_t((r * cols + j) / 2)] |= uint8_t(v << ((j & 1) * 4));
      }
    }
  }
  return q;
}

}  // namespace bg
