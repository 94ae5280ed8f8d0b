// Segmented LoRA (Punica's SGMV) for the CUDA backend; lora_kernels.h has the
// contract. Two kernels per projection:
//  - shrink: a block per (segment, group of RPW rows); its 256 threads split K in
//    8-element (16-byte) chunks, each thread keeping the dot products of its rows
//    with 16 adapter ranks at a time in registers, then the lanes of a warp and the
//    block's 8 warps are summed in a fixed order. A row is read from memory once a
//    16-rank pass, every row of the block shares each load of the adapter, and a
//    row's tmp values depend only on K (never on the other rows of the batch, nor on
//    RPW). RPW is 1 for decode-sized segments (a block a row: enough blocks to fill
//    the GPU) and 4 for prefill-sized ones (a quarter of the adapter re-reads).
//    The first version (a warp a (row, rank) dot product, 2-byte loads, a block per
//    16 rows) ran a Gemma-7B decode step with 8 adapters at 0.23x the base on an
//    H100 (2026-12-08): 16 blocks for 160 rows left the GPU nearly idle.
//  - expand: a block per (segment, row tile, 256 output columns); the tile's tmp
//    rows sit in shared memory and each thread sums its column over the rank in
//    order, then adds into out (f32 sum, one rounding to out's dtype).
// cuda_ops_test's lora_add_matches_cpu_over_grid checks them against the CPU
// backend, lora_add_is_batch_invariant a row alone against the same row in a batch.
#include <cuda_bf16.h>

#include <string>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/lora_kernels.h"

namespace bg {
namespace cuda {
namespace {

constexpr int kTileRows = 16;
constexpr int kShrinkThreads = 256;
constexpr int kShrinkWarps = kShrinkThreads / 32;
constexpr int kShrinkRanks = 16;  // ranks a pass keeps in registers
constexpr int kExpandThreads = 256;

// kVec: K, both strides and both base pointers allow 16-byte loads (decided from the
// tensors alone, so the same for every batch); else 2-byte loads, one element a step.
template <int RPW, bool kVec>
__global__ void __launch_bounds__(kShrinkThreads)
    lora_shrink_kernel(const bf16* __restrict__ x, int64_t xs, const bf16* __restrict__ a, int64_t as, int32_t rank,
                       int64_t K, const int32_t* __restrict__ seg, float* __restrict__ tmp, int64_t ts) {
  __shared__ float part[kShrinkWarps][RPW][kShrinkRanks];
  const int32_t row0 = seg[3 * blockIdx.y], rows = seg[3 * blockIdx.y + 1], slot = seg[3 * blockIdx.y + 2];
  const int32_t t0 = blockIdx.x * RPW;
  if (t0 >= rows) return;
  const int nrows = min(RPW, rows - t0);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const bf16* xr = x + int64_t(row0 + t0) * xs;
  for (int32_t r0 = 0; r0 < rank; r0 += kShrinkRanks) {
    const int nr = min(kShrinkRanks, rank - r0);
    const bf16* ar = a + (int64_t(slot) * rank + r0) * as;
    float acc[RPW][kShrinkRanks];
#pragma unroll
    for (int i = 0; i < RPW; ++i)
#pragma unroll
      for (int r = 0; r < kShrinkRanks; ++r) acc[i][r] = 0.0f;
    if constexpr (kVec) {
      for (int64_t k = int64_t(tid) * 8; k < K; k += kShrinkThreads * 8) {
        float xv[RPW][8];
#pragma unroll
        for (int i = 0; i < RPW; ++i) {
          if (i < nrows) {
            unpack_bf16x8(*reinterpret_cast<const uint4*>(xr + i * xs + k), xv[i]);
          } else {
#pragma unroll
            for (int j = 0; j < 8; ++j) xv[i][j] = 0.0f;
          }
        }
#pragma unroll
        for (int r = 0; r < kShrinkRanks; ++r) {
          if (r >= nr) break;
          float av[8];
          unpack_bf16x8(*reinterpret_cast<const uint4*>(ar + r * as + k), av);
#pragma unroll
          for (int i = 0; i < RPW; ++i) {
            float d = 0.0f;
#pragma unroll
            for (int j = 0; j < 8; ++j) d += xv[i][j] * av[j];
            acc[i][r] += d;
          }
        }
      }
    } else {
      for (int64_t k = tid; k < K; k += kShrinkThreads) {
        float xv[RPW];
#pragma unroll
        for (int i = 0; i < RPW; ++i) xv[i] = i < nrows ? __bfloat162float(xr[i * xs + k]) : 0.0f;
#pragma unroll
        for (int r = 0; r < kShrinkRanks; ++r) {
          if (r >= nr) break;
          const float av = __bfloat162float(ar[r * as + k]);
#pragma unroll
          for (int i = 0; i < RPW; ++i) acc[i][r] += xv[i] * av;
        }
      }
    }
#pragma unroll
    for (int i = 0; i < RPW; ++i)
#pragma unroll
      for (int r = 0; r < kShrinkRanks; ++r) {
        const float v = warp_sum(acc[i][r]);
        if (lane == 0) part[warp][i][r] = v;
      }
    __syncthreads();
    if (tid < RPW * kShrinkRanks) {
      const int i = tid / kShrinkRanks, r = tid % kShrinkRanks;
      if (i < nrows && r < nr) {
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < kShrinkWarps; ++w) v += part[w][i][r];
        tmp[int64_t(row0 + t0 + i) * ts + r0 + r] = v;
      }
    }
    __syncthreads();  // part is rewritten by the next pass
  }
}

template <int RPW, bool kVec>
void launch_shrink(const Tensor& x, const Tensor& a, int32_t rank, const int32_t* segments, int32_t num_segments,
                   int32_t max_rows, Tensor& tmp, cudaStream_t stream) {
  const dim3 grid(unsigned(ceil_div(max_rows, RPW)), unsigned(num_segments));
  lora_shrink_kernel<RPW, kVec><<<grid, kShrinkThreads, 0, stream>>>(x.ptr<bf16>(), x.stride, a.ptr<bf16>(), a.stride,
                                                                     rank, x.cols, segments, tmp.ptr<float>(),
                                                                     tmp.stride);
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
  const bool vec = K % 8 == 0 && x.stride % 8 == 0 && a.stride % 8 == 0 &&
                   reinterpret_cast<uintptr_t>(x.data) % 16 == 0 && reinterpret_cast<uintptr_t>(a.data) % 16 == 0;
  // A row's values do not depend on RPW (each thread's share of K and the order of the
  // sums are the same), so the choice may follow the batch.
  if (max_rows <= 64) {
    vec ? launch_shrink<1, true>(x, a, rank, segments, num_segments, max_rows, tmp, stream)
        : launch_shrink<1, false>(x, a, rank, segments, num_segments, max_rows, tmp, stream);
  } else {
    vec ? launch_shrink<4, true>(x, a, rank, segments, num_segments, max_rows, tmp, stream)
        : launch_shrink<4, false>(x, a, rank, segments, num_segments, max_rows, tmp, stream);
  }
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
