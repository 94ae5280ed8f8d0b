// The deterministic mode's matrix product: out = x * w^T (+ bias), bf16 inputs,
// f32 accumulation on mma.sync tensor cores (sm_80+).
//
// Why our own: cuBLAS picks its kernel (tile shape, split-K, stream-K) from the
// problem size, so a token's output row can round differently when the batch has
// 7 rows or 700. Here every output element is reduced over K in one fixed order
// (32-wide k tiles in sequence, two 16-wide mma steps each) whatever M is; rows
// beyond M are zero-filled and never change another row. It is slower than cuBLAS
// (see dev/cuda/NOTES.md for how much).
//
// Tiling: 128x128 output tile per block of 8 warps (2 x 4, 64x32 per warp), k tiles
// of 32 staged by cp.async in a 3-deep ring, ldmatrix fragments, grouped raster order
// (8 row tiles per group) so neighbouring blocks share weight tiles in L2.
#include <string>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_kernels.h"

namespace bg {
namespace cuda {
namespace {

constexpr int kBM = 128, kBN = 128, kBK = 32, kStages = 3, kThreads = 256;
constexpr int kLd = kBK + 8;  // smem row stride (bf16): 80 B rows, conflict-free ldmatrix
constexpr size_t kStageElems = size_t(kBM + kBN) * kLd;
constexpr size_t kSmem = kStages * kStageElems * sizeof(bf16);
constexpr int kGroupM = 8;

template <typename TO>
__global__ void __launch_bounds__(kThreads) gemm_kernel(const bf16* __restrict__ A, int64_t lda,
                                                        const bf16* __restrict__ B, int64_t ldb,
                                                        const bf16* __restrict__ bias,
                                                        TO* __restrict__ C, int64_t ldc, int M,
                                                        int N, int K) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* smem = reinterpret_cast<bf16*>(smem_raw);

  // Grouped raster: block id -> (row tile, column tile).
  const int tiles_m = (M + kBM - 1) / kBM, tiles_n = (N + kBN - 1) / kBN;
  const int pid = blockIdx.x;
  const int per_group = kGroupM * tiles_n;
  const int first_m = (pid / per_group) * kGroupM;
  const int group_m = min(tiles_m - first_m, kGroupM);
  const int tm = first_m + (pid % per_group) % group_m;
  const int tn = (pid % per_group) / group_m;
  const int m0 = tm * kBM, n0 = tn * kBN;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int wm = warp >> 2, wn = warp & 3;
  const int ktiles = (K + kBK - 1) / kBK;

  auto load_stage = [&](int stage, int kt) {
    bf16* sa = smem + stage * kStageElems;
    bf16* sb = sa + kBM * kLd;
    const int k0 = kt * kBK;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int c = tid + i * kThreads;  // 512 chunks of 8 elements per operand
      const int r = c >> 2, kc = (c & 3) * 8;
      const bool kin = k0 + kc < K;
      const bool oka = kin && m0 + r < M;
      cp_async16(sa + r * kLd + kc, oka ? A + int64_t(m0 + r) * lda + k0 + kc : A, oka);
      const bool okb = kin && n0 + r < N;
      cp_async16(sb + r * kLd + kc, okb ? B + int64_t(n0 + r) * ldb + k0 + kc : B, okb);
    }
  };

  float acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.0f;

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < ktiles) load_stage(s, s);
    cp_async_commit();
  }

  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // stage kt ready; every warp is done with stage kt - 1
    if (kt + kStages - 1 < ktiles) load_stage((kt + kStages - 1) % kStages, kt + kStages - 1);
    cp_async_commit();

    const bf16* sa = smem + (kt % kStages) * kStageElems;
    const bf16* sb = sa + kBM * kLd;
#pragma unroll
    for (int ks = 0; ks < kBK / 16; ++ks) {
      uint32_t af[4][4], bfr[2][4];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
        ldmatrix_x4(af[mi], sa + (wm * 64 + mi * 16 + (lane & 15)) * kLd + ks * 16 + (lane >> 4) * 8);
#pragma unroll
      for (int np = 0; np < 2; ++np)
        ldmatrix_x4(bfr[np], sb + (wn * 32 + np * 16 + (lane & 7) + (lane >> 4) * 8) * kLd + ks * 16 +
                                 ((lane >> 3) & 1) * 8);
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni)
          mma_bf16_16816(acc[mi][ni], af[mi], bfr[ni >> 1][(ni & 1) * 2], bfr[ni >> 1][(ni & 1) * 2 + 1]);
    }
  }
  cp_async_wait<0>();

  const int g = lane >> 2, t4 = lane & 3;
#pragma unroll
  for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
    for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = m0 + wm * 64 + mi * 16 + g + (e >> 1) * 8;
        const int col = n0 + wn * 32 + ni * 8 + 2 * t4 + (e & 1);
        if (row < M && col < N) {
          float v = acc[mi][ni][e];
          if (bias) v += __bfloat162float(bias[col]);
          C[int64_t(row) * ldc + col] = from_f32<TO>(v);
        }
      }
    }
  }
}

// Any alignment, any K: one thread per output, k in order. Deterministic, slow;
// only for shapes the tiled kernel cannot take.
template <typename TO>
__global__ void gemm_simple_kernel(const bf16* A, int64_t lda, const bf16* B, int64_t ldb,
                                   const bf16* bias, TO* C, int64_t ldc, int M, int N, int K) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= int64_t(M) * N) return;
  const int row = int(idx / N), col = int(idx % N);
  const bf16* a = A + int64_t(row) * lda;
  const bf16* b = B + int64_t(col) * ldb;
  float s = 0.0f;
  for (int k = 0; k < K; ++k) s = fmaf(__bfloat162float(a[k]), __bfloat162float(b[k]), s);
  if (bias) s += __bfloat162float(bias[col]);
  C[int64_t(row) * ldc + col] = from_f32<TO>(s);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

template <typename TO>
void run(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out, cudaStream_t stream) {
  const int M = int(x.rows), N = int(w.rows), K = int(x.cols);
  const bf16* bp = bias ? bias->ptr<bf16>() : nullptr;
  const bool tiled = K % 8 == 0 && x.stride % 8 == 0 && w.stride % 8 == 0 && aligned16(x.data) &&
                     aligned16(w.data);
  if (tiled) {
    BG_CUDA_CHECK(cudaFuncSetAttribute(gemm_kernel<TO>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(kSmem)));
    const int64_t blocks = ceil_div(M, kBM) * ceil_div(N, kBN);
    gemm_kernel<TO><<<unsigned(blocks), kThreads, kSmem, stream>>>(
        x.ptr<bf16>(), x.stride, w.ptr<bf16>(), w.stride, bp, out.ptr<TO>(), out.stride, M, N, K);
  } else {
    const int64_t n = int64_t(M) * N;
    gemm_simple_kernel<TO><<<unsigned(ceil_div(n, 256)), 256, 0, stream>>>(
        x.ptr<bf16>(), x.stride, w.ptr<bf16>(), w.stride, bp, out.ptr<TO>(), out.stride, M, N, K);
  }
  BG_CUDA_CHECK_LAUNCH("gemm_fixed_order");
}

}  // namespace

void launch_gemm_fixed_order(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out,
                             cudaStream_t stream) {
  if (x.rows == 0 || w.rows == 0) return;
  if (x.dtype != DType::bf16 || w.dtype != DType::bf16 || (bias && bias->dtype != DType::bf16))
    throw EngineError(ErrorCode::internal, "cuda gemm: x, w and bias must be bf16");
  if (out.dtype == DType::bf16) {
    run<bf16>(x, w, bias, out, stream);
  } else if (out.dtype == DType::f32) {
    run<float>(x, w, bias, out, stream);
  } else {
    throw EngineError(ErrorCode::internal, "cuda gemm: out must be bf16 or f32");
  }
}

}  // namespace cuda
}  // namespace bg
