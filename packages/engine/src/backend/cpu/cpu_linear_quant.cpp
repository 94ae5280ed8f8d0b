// x @ w^T with a quantized weight on the CPU: the weight is dequantized a block of
// rows at a time, right before those rows are used, so it stays packed in memory
// (0.5 to 1 byte a parameter instead of 4) and the block sits in cache while every
// token tile reads it. The multiply is linear_f32's, so results are bit-identical
// to the dense product on the dequantized weight.
#include <algorithm>

#include "backend/cpu/cpu_kernels.h"

namespace bg {
namespace cpu {

void linear_quant_f32(ThreadPool& pool, const float* x, int64_t xs, const QuantWeight& w, const float* bias,
                      float* out, int64_t os, int64_t T, float* const* scratch) {
  const int64_t N = w.rows, K = w.cols;
  if (T <= 0 || N <= 0) return;
  const int64_t blocks = (N + kQuantBlockRows - 1) / kQuantBlockRows;
  // Dequantizing a block costs about what one token's product with it does, so a
  // block is worth a thread even for a single token.
  const int64_t work_per_block = (T + 1) * K * kQuantBlockRows;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, work_per_block));
  pool.parallel_for(blocks, grain, [&](int chunk, int64_t b0, int64_t b1) {
    float* rows = scratch[chunk];
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n0 = b * kQuantBlockRows, n = std::min(kQuantBlockRows, N - n0);
      quant_dequantize_rows(w, n0, n, rows);
      linear_f32_columns(x, xs, rows, K, bias ? bias + n0 : nullptr, out + n0, os, T, 0, n, K);
    }
  });
}

}  // namespace cpu
}  // namespace bg
