// x @ w^T on the CPU: register tiles of up to 4 tokens x 4 weight rows, each
// element accumulated in 8 lanes over K and reduced exactly as dot8 does, so
// an element's value is the same in a 4x4 tile, an edge tile or a lone row.
#include <algorithm>
#include <cstring>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_simd.h"

namespace bg {
namespace cpu {
namespace {

// Weight rows per cache block: the block is re-used by every token tile, so it
// should stay in L2 (16 rows of K = 4096 f32 are 256 KiB).
constexpr int64_t kRowsPerBlock = 16;

template <int TT, int NN>
BG_INLINE void tile(const float* x, int64_t xs, const float* w, int64_t ws, const float* bias,
                    float* out, int64_t os, int64_t K) {
  v8f acc[TT][NN];
  for (int t = 0; t < TT; ++t)
    for (int n = 0; n < NN; ++n) acc[t][n] = splat8(0.0f);
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    v8f xv[TT];
    for (int t = 0; t < TT; ++t) xv[t] = load8(x + t * xs + k);
    for (int n = 0; n < NN; ++n) {
      const v8f wv = load8(w + n * ws + k);
      for (int t = 0; t < TT; ++t) acc[t][n] += xv[t] * wv;
    }
  }
  if constexpr (NN == 4) {
    // Four outputs of a token at once; lane n gets exactly the scalar path's
    // operations below (hsum8, the tail in order, then the bias).
    for (int t = 0; t < TT; ++t) {
      v4f s = hsum8x4(acc[t][0], acc[t][1], acc[t][2], acc[t][3]);
      for (int64_t kk = k; kk < K; ++kk) {
        const float xk = x[t * xs + kk];
        const v4f wk = {w[kk], w[ws + kk], w[2 * ws + kk], w[3 * ws + kk]};
        s += v4f{xk, xk, xk, xk} * wk;
      }
      if (bias) s += v4f{bias[0], bias[1], bias[2], bias[3]};
      std::memcpy(out + t * os, &s, sizeof(s));
    }
  } else {
    for (int t = 0; t < TT; ++t) {
      for (int n = 0; n < NN; ++n) {
        float s = hsum8(acc[t][n]);
        for (int64_t kk = k; kk < K; ++kk) s += x[t * xs + kk] * w[n * ws + kk];
        if (bias) s += bias[n];
        out[t * os + n] = s;
      }
    }
  }
}

template <int TT>
BG_INLINE void tile_rows(const float* x, int64_t xs, const float* w, int64_t ws, const float* bias,
                         float* out, int64_t os, int64_t K, int64_t nn) {
  switch (nn) {
    case 4: tile<TT, 4>(x, xs, w, ws, bias, out, os, K); break;
    case 3: tile<TT, 3>(x, xs, w, ws, bias, out, os, K); break;
    case 2: tile<TT, 2>(x, xs, w, ws, bias, out, os, K); break;
    default: tile<TT, 1>(x, xs, w, ws, bias, out, os, K); break;
  }
}

// Output columns [n0, n1) for all T tokens.
BG_CPU_CLONES
void linear_columns(const float* x, int64_t xs, const float* w, int64_t ws, const float* bias,
                    float* out, int64_t os, int64_t T, int64_t n0, int64_t n1, int64_t K) {
  for (int64_t nb = n0; nb < n1; nb += kRowsPerBlock) {
    const int64_t ne = std::min(n1, nb + kRowsPerBlock);
    for (int64_t t = 0; t < T; t += 4) {
      const int64_t tt = std::min<int64_t>(4, T - t);
      for (int64_t n = nb; n < ne; n += 4) {
        const int64_t nn = std::min<int64_t>(4, ne - n);
        const float* xp = x + t * xs;
        const float* wp = w + n * ws;
        const float* bp = bias ? bias + n : nullptr;
        float* op = out + t * os + n;
        switch (tt) {
          case 4: tile_rows<4>(xp, xs, wp, ws, bp, op, os, K, nn); break;
          case 3: tile_rows<3>(xp, xs, wp, ws, bp, op, os, K, nn); break;
          case 2: tile_rows<2>(xp, xs, wp, ws, bp, op, os, K, nn); break;
          default: tile_rows<1>(xp, xs, wp, ws, bp, op, os, K, nn); break;
        }
      }
    }
  }
}

}  // namespace

void linear_f32_columns(const float* x, int64_t xs, const float* w, int64_t ws, const float* bias, float* out,
                        int64_t os, int64_t T, int64_t n0, int64_t n1, int64_t K) {
  linear_columns(x, xs, w, ws, bias, out, os, T, n0, n1, K);
}

void linear_f32(ThreadPool& pool, const float* x, int64_t xs, const float* w, int64_t ws,
                const float* bias, float* out, int64_t os, int64_t T, int64_t N, int64_t K) {
  if (T <= 0 || N <= 0) return;
  // Threads split the output columns in whole weight blocks; a block is ~T*K*16
  // multiply-adds, and tiny products run on the calling thread alone.
  const int64_t blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
  const int64_t work_per_block = T * K * kRowsPerBlock;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, work_per_block));
  pool.parallel_for(blocks, grain, [&](int, int64_t b0, int64_t b1) {
    linear_columns(x, xs, w, ws, bias, out, os, T, b0 * kRowsPerBlock,
                   std::min(N, b1 * kRowsPerBlock), K);
  });
}

}  // namespace cpu
}  // namespace bg
