// 8-lane f32 vectors (GCC vector extensions) shared by the CPU kernels. The lane
// split and the horizontal reduction order are fixed here, once, so every kernel
// reduces the same way. Functions are always_inline so that they take on the
// instruction set of the target_clones kernel that calls them.
#pragma once
#include <cstdint>
#include <cstring>

// The 32-byte vector type crosses no ABI boundary (everything is inlined), so the
// warning about passing it without AVX does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

#define BG_INLINE inline __attribute__((always_inline))
// Kernels are compiled for AVX-512, AVX2+FMA and the baseline, picked at load time.
#define BG_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

namespace bg {
namespace cpu {

typedef float v8f __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));

BG_INLINE v8f load8(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

BG_INLINE void store8(float* p, v8f v) { std::memcpy(p, &v, sizeof(v)); }

BG_INLINE v8f splat8(float x) { return v8f{x, x, x, x, x, x, x, x}; }

// ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)).
BG_INLINE float hsum8(v8f v) {
  return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

// hsum8 of four vectors at once: {hsum8(a), hsum8(b), hsum8(c), hsum8(d)} with
// exactly hsum8's additions, done as a transpose so a tile pays 4 shuffles per
// 4 outputs instead of lane extractions per output.
BG_INLINE v4f hsum8x4(v8f a, v8f b, v8f c, v8f d) {
  // Fold halves: lane i = l_i + l_{i+4}, i.e. (l0+l4), (l1+l5), (l2+l6), (l3+l7).
  const v4f a4 = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
  const v4f b4 = __builtin_shufflevector(b, b, 0, 1, 2, 3) + __builtin_shufflevector(b, b, 4, 5, 6, 7);
  const v4f c4 = __builtin_shufflevector(c, c, 0, 1, 2, 3) + __builtin_shufflevector(c, c, 4, 5, 6, 7);
  const v4f d4 = __builtin_shufflevector(d, d, 0, 1, 2, 3) + __builtin_shufflevector(d, d, 4, 5, 6, 7);
  // (p0 + p2) and (p1 + p3) for a and b, then c and d ...
  const v4f ab = __builtin_shufflevector(a4, b4, 0, 4, 1, 5) + __builtin_shufflevector(a4, b4, 2, 6, 3, 7);
  const v4f cd = __builtin_shufflevector(c4, d4, 0, 4, 1, 5) + __builtin_shufflevector(c4, d4, 2, 6, 3, 7);
  // ... and their sum: (p0 + p2) + (p1 + p3) for each of a, b, c, d.
  return __builtin_shufflevector(ab, cd, 0, 1, 4, 5) + __builtin_shufflevector(ab, cd, 2, 3, 6, 7);
}

// dot(a, b): 8 lane-wise partial sums over k = lane (mod 8), reduced by hsum8, then
// the tail k >= 8*floor(n/8) added in order.
BG_INLINE float dot8(const float* a, const float* b, int64_t n) {
  v8f acc = splat8(0.0f);
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) acc += load8(a + k) * load8(b + k);
  float s = hsum8(acc);
  for (; k < n; ++k) s += a[k] * b[k];
  return s;
}

}  // namespace cpu
}  // namespace bg
