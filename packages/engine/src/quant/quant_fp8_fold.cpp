// Block-scaled fp8 weights folded into one scale per row (batchgen/quant_weight.h).
#include <algorithm>
#include <cmath>

#include "batchgen/quant_weight.h"
#include "batchgen/tensor.h"

namespace bg {

std::optional<QuantWeight> quant_fp8_fold_rows(const QuantWeight& w, double max_rel_l2) {
  if (w.format != QuantFormat::fp8_e4m3 || !w.k_perm.empty())
    throw EngineError(ErrorCode::internal, "quant_fp8_fold_rows: not an fp8 weight in column order");
  const int64_t K = w.cols, G = w.group_size, groups = w.groups();
  float e4m3[256];
  for (int b = 0; b < 256; ++b) e4m3[b] = e4m3_to_f32(uint8_t(b));
  QuantWeight out = quant_weight_make(QuantFormat::fp8_e4m3, w.rows, K, K, w.source + ", block scales folded per row");
  double err2 = 0, ref2 = 0;
  for (int64_t r = 0; r < w.rows; ++r) {
    const float* s = w.scales.data() + r * groups;
    float smax = 0;
    for (int64_t g = 0; g < groups; ++g) smax = std::max(smax, std::fabs(s[g]));
    const float scale = smax > 0 ? smax : 1.0f;
    out.scales[size_t(r)] = scale;
    const uint8_t* q = w.data.data() + r * K;
    uint8_t* o = out.data.data() + r * K;
    for (int64_t k = 0; k < K; ++k) {
      const float v = e4m3[q[k]] * s[k / G];
      o[k] = f32_to_e4m3(v / scale);
      const double d = double(e4m3[o[k]] * scale) - v;
      err2 += d * d;
      ref2 += double(v) * v;
    }
  }
  const double rel = ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
  if (!(rel <= max_rel_l2)) return std::nullopt;
  return out;
}

}  // namespace bg
