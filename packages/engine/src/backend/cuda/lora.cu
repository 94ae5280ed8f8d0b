// Segmented LoRA (Punica's SGMV) for the CUDA backend; lora_kernels.h has the
// contract. Two kernels per projection:
//  - shrink: a block per (segment, tile of kTileRows rows); each warp reduces whole
//    (row, rank) dot products over K, lanes striding K, so a row's tmp values do
//    not depend on the other rows of the batch;
//  - expand: a block per (segment, row tile, 256 output columns); the tile's tmp
//    rows sit in shared memory and each thread sums its column over the rank in
//    order, then adds into out (f32 sum, one rounding to out's dtype).
// Unverified on a GPU when written (no GPU time): cuda_ops_test's
// lora_add_matches_cpu_over_grid checks it against the CPU backend.
#include <cuda_bf16.h>

#include <string>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/lora_kernels.h"

namespace bg {
namespace cuda {
namespace {

constexpr int kTileRows = 16;
constexpr int kShrinkThreads = 256;
constexpr int kExpandThreads = 256;

__global__ void lora_shrink_kernel(const bf16* __restrict__ x, int64_t xs, const bf16* __restrict__ a, int64_t as,
                                   int32_t rank, int64_t K, const int32_t* __restrict__ seg, float* __restrict__ tmp,
                                   int64_t ts) {
  const int32_t row0 = seg[3 * blockIdx.y], rows = seg[3 * blockIdx.y + 1], slot = seg[3 * blockIdx.y + 2];
  const int32_t t0 = blockIdx.x * kTileRows;
  if (t0 >= rows) return;
  const int32_t tile = min(kTileRows, rows - t0);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int32_t p = warp; p < tile * rank; p += warps) {
    const int32_t i = p / rank, r = p % rank;
    const bf16* xr = x + int64_t(row0 + t0 + i) * xs;
    const bf16* ar = a + (int64_t(slot) * rank + r) * as;
    float s = 0.0f;
    for (int64_t k = lane; k < K; k += 32) s += __bfloat162float(xr[k]) * __bfloat162float(ar[k]);
    s = warp_sum(s);
    if (lane == 0) tmp[int64_t(row0 + t0 + i) * ts + r] = s;
  }
}

template <typename TOut>
__global__ void lora_expand_kernel(const float* __restrict__ tmp, int64_t ts, const bf16* __restrict__ b,
                                   int64_t bs, int32_t rank, int64_t N, const int32_t* __restrict__ seg,
                                   TOut* __restrict__ out, int64_t os) {
  extern __shared__ float u[];  // [kTileRows, rank]
  const int32_t row0 = seg[3 * blockIdx.z], rows = seg[3 * blockIdx.z + 1], slot = seg[3 * blockIdx.z + 2];
  const int32_t t0 = blockIdx.y * kTileRows;
  if (t0 >= rows) return;
  const int32_t tile = min(kTileRows, rows - t0);
  for (int32_t e = threadIdx.x; e < tile * rank; e += blockDim.x) {
    const int32_t i = e / rank, r = e % rank;
    u[e] = tmp[int64_t(row0 + t0 + i) * ts + r];
  }
  __syncthreads();
  const int64_t n = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= N) return;
  const bf16* bn = b + (int64_t(slot) * N + n) * bs;
  float acc[kTileRows];
#pragma unroll
  for (int i = 0; i < kTileRows; ++i) acc[i] = 0.0f;
  for (int32_t r = 0; r < rank; ++r) {
    const float w = __bfloat162float(bn[r]);
#pragma unroll
    for (int i = 0; i < kTileRows; ++i) acc[i] += u[i * rank + r] * w;
  }
  for (int i = 0; i < tile; ++i) {
    TOut* o = out + int64_t(row0 + t0 + i) * os + n;
    *o = from_f32<TOut>(to_f32(*o) + acc[i]);
  }
}

void lora_fail(const std::string& msg) { throw EngineError(ErrorCode::internal, "lora_add: " + msg); }

}  // namespace

void launch_lora_add(const Tensor& x, const Tensor& a, const Tensor& b, int32_t rank, const int32_t* segments,
                     int32_t num_segments, int32_t max_rows, Tensor& tmp, Tensor& out, cudaStream_t stream) {
  if (num_segments <= 0 || max_rows <= 0) return;
  if (x.dtype != DType::bf16 || a.dtype != DType::bf16 || b.dtype != DType::bf16)
    lora_fail("x, a and b must be bf16");
  if (tmp.dtype != DType::f32) lora_fail("tmp must be f32");
  if (out.dtype != DType::bf16 && out.dtype != DType::f32) lora_fail("out must be bf16 or f32");
  if (rank < 1 || rank > kLoraMaxRank) lora_fail("rank " + std::to_string(rank) + " outside [1, 256]");
  const int64_t N = out.cols, K = x.cols;
  const dim3 shrink_grid(unsigned(ceil_div(max_rows, kTileRows)), unsigned(num_segments));
  lora_shrink_kernel<<<shrink_grid, kShrinkThreads, 0, stream>>>(x.ptr<bf16>(), x.stride, a.ptr<bf16>(), a.stride,
                                                                 rank, K, segments, tmp.ptr<float>(), tmp.stride);
  BG_CUDA_CHECK_LAUNCH("lora_shrink_kernel");
  const dim3 expand_grid(unsigned(ceil_div(N, kExpandThreads)), unsigned(ceil_div(max_rows, kTileRows)),
                         unsigned(num_segments));
  const size_t smem = size_t(kTileRows) * size_t(rank) * sizeof(float);
  if (out.dtype == DType::bf16) {
    lora_expand_kernel<bf16><<<expand_grid, kExpandThreads, smem, stream>>>(
        tmp.ptr<float>(), tmp.stride, b.ptr<bf16>(), b.stride, rank, N, segments, out.ptr<bf16>(), out.stride);
  } else {
    lora_expand_kernel<float><<<expand_grid, kExpandThreads, smem, stream>>>(
        tmp.ptr<float>(), tmp.stride, b.ptr<bf16>(), b.stride, rank, N, segments, out.ptr<float>(), out.stride);
  }
  BG_CUDA_CHECK_LAUNCH("lora_expand_kernel");
}

}  // namespace cuda
}  // namespace bg
