// LoRA on the CPU backend (the reference for the CUDA kernels): segmented, as
// Punica's SGMV groups rows by adapter. Per segment, the shrink x A^T is the
// backend's own linear kernel and the expand adds tmp B^T element by element in a
// fixed order, so a row's result never depends on its batch-mates.
#include <algorithm>

#include "backend/cpu/cpu_kernels.h"

namespace bg {
namespace cpu {

void lora_add_f32(ThreadPool& pool, const LoraArgs& l) {
  const int64_t R = l.rank, N = l.n, K = l.k;
  for (int32_t g = 0; g < l.num_segments; ++g) {
    const int64_t row0 = l.segments[3 * g], rows = l.segments[3 * g + 1], slot = l.segments[3 * g + 2];
    const float* a = l.a + slot * R * l.a_stride;
    const float* b = l.b + slot * N * l.b_stride;
    float* tmp = l.tmp + row0 * l.tmp_stride;
    linear_f32(pool, l.x + row0 * l.x_stride, l.x_stride, a, l.a_stride, nullptr, tmp, l.tmp_stride, rows, R, K);
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, rows * R));
    pool.parallel_for(N, grain, [&](int, int64_t n0, int64_t n1) {
      for (int64_t t = 0; t < rows; ++t) {
        const float* u = tmp + t * l.tmp_stride;
        float* o = l.out + (row0 + t) * l.out_stride;
        for (int64_t n = n0; n < n1; ++n) {
          const float* bn = b + n * l.b_stride;
          float s = 0.0f;
          for (int64_t r = 0; r < R; ++r) s += u[r] * bn[r];
          o[n] += s;
        }
      }
    });
  }
}

}  // namespace cpu
}  // namespace bg
