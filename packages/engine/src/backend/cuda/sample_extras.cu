// The sampler's extras on the GPU, each the device form of its CPU reference in
// src/sample/sampler.cpp: logprobs of the raw logits (log-sum-exp and the top
// alternatives), the in-place logit processing (bias, penalties, grammar mask),
// and the sampled token's logprob once launch_sample has picked it.
#include <cfloat>
#include <climits>
#include <cmath>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_kernels.h"

namespace bg {
namespace cuda {
namespace {

constexpr int kTopThreads = 256;
constexpr int kProcessThreads = 256;

__device__ __forceinline__ float finite_or_ninf(float v) { return v == v ? v : -INFINITY; }

// (value desc, id asc): a before b.
__device__ __forceinline__ bool ahead(float va, int ia, float vb, int ib) {
  return va > vb || (va == vb && ia < ib);
}

__global__ void __launch_bounds__(kTopThreads) logprobs_top_kernel(const float* __restrict__ logits, int64_t stride,
                                                                   int vocab, SampleExtrasDev x) {
  const int row = blockIdx.x;
  const int k = x.top_logprobs[row];
  if (k < 0) return;
  const float* l = logits + int64_t(row) * stride;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  __shared__ float red_f[kTopThreads / 32];
  __shared__ double red_d[kTopThreads / 32];
  __shared__ int red_i[kTopThreads / 32];
  __shared__ int red_t[kTopThreads / 32];
  __shared__ float s_max;
  __shared__ double s_lse;
  __shared__ int s_winner;

  float mx = -INFINITY;
  for (int i = tid; i < vocab; i += kTopThreads) mx = fmaxf(mx, finite_or_ninf(l[i]));
  for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  if (lane == 0) red_f[warp] = mx;
  __syncthreads();
  if (tid == 0) {
    float m = red_f[0];
    for (int w = 1; w < kTopThreads / 32; ++w) m = fmaxf(m, red_f[w]);
    s_max = m;
  }
  __syncthreads();
  mx = s_max;
  double sum = 0;
  for (int i = tid; i < vocab; i += kTopThreads) sum += exp(double(finite_or_ninf(l[i])) - double(mx));
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (lane == 0) red_d[warp] = sum;
  __syncthreads();
  if (tid == 0) {
    double t = 0;
    for (int w = 0; w < kTopThreads / 32; ++w) t += red_d[w];
    s_lse = double(mx) + log(t);
    x.lse[row] = float(s_lse);
  }
  __syncthreads();
  if (k == 0) return;

  // Each thread's best k (ids come in increasing order, so equal values stay id-ordered).
  float tv[kMaxTopLogprobs];
  int ti[kMaxTopLogprobs];
  int n = 0;
  for (int i = tid; i < vocab; i += kTopThreads) {
    const float v = finite_or_ninf(l[i]);
    if (n == k && !(v > tv[k - 1])) continue;
    int j = n < k ? n++ : k - 1;
    while (j > 0 && v > tv[j - 1]) {
      tv[j] = tv[j - 1];
      ti[j] = ti[j - 1];
      --j;
    }
    tv[j] = v;
    ti[j] = i;
  }
  // k rounds of a block-wide best over every thread's next candidate.
  int head = 0;
  for (int r = 0; r < k; ++r) {
    float v = head < n ? tv[head] : -INFINITY;
    int id = head < n ? ti[head] : INT_MAX;
    int who = tid;
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, v, o);
      const int oi = __shfl_xor_sync(0xffffffffu, id, o);
      const int ow = __shfl_xor_sync(0xffffffffu, who, o);
      if (ahead(ov, oi, v, id)) {
        v = ov;
        id = oi;
        who = ow;
      }
    }
    if (lane == 0) {
      red_f[warp] = v;
      red_i[warp] = id;
      red_t[warp] = who;
    }
    __syncthreads();
    if (tid == 0) {
      float bv = red_f[0];
      int bi = red_i[0], bw = red_t[0];
      for (int w = 1; w < kTopThreads / 32; ++w) {
        if (ahead(red_f[w], red_i[w], bv, bi)) {
          bv = red_f[w];
          bi = red_i[w];
          bw = red_t[w];
        }
      }
      // Fewer finite candidates than k: the rest are -inf ids in id order, which the
      // heads also hold (every thread keeps -inf values too), so bi is always valid.
      x.top_ids[row * kMaxTopLogprobs + r] = bi == INT_MAX ? 0 : bi;
      x.top_lps[row * kMaxTopLogprobs + r] = float(double(bv) - s_lse);
      s_winner = bw;
    }
    __syncthreads();
    if (tid == s_winner) ++head;
    __syncthreads();
  }
}

__global__ void __launch_bounds__(kProcessThreads) logits_process_kernel(float* __restrict__ logits, int64_t stride,
                                                                         int vocab, SampleExtrasDev x) {
  const int row = blockIdx.x;
  float* l = logits + int64_t(row) * stride;
  const int tid = threadIdx.x;
  const int b0 = x.bias_offsets ? x.bias_offsets[row] : 0, b1 = x.bias_offsets ? x.bias_offsets[row + 1] : 0;
  const int p0 = x.pen_offsets ? x.pen_offsets[row] : 0, p1 = x.pen_offsets ? x.pen_offsets[row + 1] : 0;
  for (int i = b0 + tid; i < b1; i += kProcessThreads) {
    const int t = x.bias_tokens[i];
    x.bias_raw[i] = (t >= 0 && t < vocab) ? l[t] : 0.0f;
  }
  for (int i = p0 + tid; i < p1; i += kProcessThreads) {
    const int t = x.pen_tokens[i];
    x.pen_raw[i] = (t >= 0 && t < vocab) ? l[t] : 0.0f;
  }
  __syncthreads();
  for (int i = b0 + tid; i < b1; i += kProcessThreads) {
    const int t = x.bias_tokens[i];
    if (t >= 0 && t < vocab) atomicAdd(&l[t], x.bias_values[i]);
  }
  __syncthreads();
  if (p1 > p0) {
    const float rep = x.repetition ? x.repetition[row] : 1.0f;
    const float freq = x.frequency ? x.frequency[row] : 0.0f;
    const float pres = x.presence ? x.presence[row] : 0.0f;
    for (int i = p0 + tid; i < p1; i += kProcessThreads) {  // distinct tokens: no two threads share one
      const int t = x.pen_tokens[i];
      if (t < 0 || t >= vocab) continue;
      float v = l[t];
      if (rep != 1.0f) v = v > 0 ? v / rep : v * rep;
      const int c = x.pen_counts[i];
      if (c > 0) v -= freq * float(c) + pres;
      l[t] = v;
    }
  }
  if (x.mask_row && x.mask_row[row] >= 0) {
    __syncthreads();
    const uint32_t* m = x.masks + int64_t(x.mask_row[row]) * x.mask_words;
    for (int i = tid; i < vocab; i += kProcessThreads) {
      if (!((m[i >> 5] >> (i & 31)) & 1u)) l[i] = -INFINITY;
    }
  }
}

__global__ void logprobs_sampled_kernel(const float* __restrict__ logits, int64_t stride, int vocab,
                                        SampleExtrasDev x, const int32_t* __restrict__ ids) {
  const int row = blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= x.R || x.top_logprobs[row] < 0) return;
  const int id = ids[row];
  float raw = (id >= 0 && id < vocab) ? logits[int64_t(row) * stride + id] : -INFINITY;
  // A listed token's logit was processed in place: its raw value was saved.
  if (x.pen_offsets) {
    for (int i = x.pen_offsets[row]; i < x.pen_offsets[row + 1]; ++i) if (x.pen_tokens[i] == id) raw = x.pen_raw[i];
  }
  if (x.bias_offsets) {
    for (int i = x.bias_offsets[row]; i < x.bias_offsets[row + 1]; ++i) if (x.bias_tokens[i] == id) raw = x.bias_raw[i];
  }
  x.sampled_lp[row] = float(double(finite_or_ninf(raw)) - double(x.lse[row]));
}

void expect_f32(const Tensor& logits, const char* what) {
  if (logits.dtype != DType::f32) throw EngineError(ErrorCode::internal, std::string(what) + ": logits must be f32");
}

}  // namespace

void launch_logprobs_top(const Tensor& logits, const SampleExtrasDev& x, cudaStream_t stream) {
  if (x.R == 0 || !x.top_logprobs) return;
  expect_f32(logits, "cuda logprobs");
  logprobs_top_kernel<<<x.R, kTopThreads, 0, stream>>>(logits.ptr<float>(), logits.stride, int(logits.cols), x);
  BG_CUDA_CHECK_LAUNCH("logprobs_top");
}

void launch_logits_process(Tensor& logits, const SampleExtrasDev& x, cudaStream_t stream) {
  if (x.R == 0 || (!x.pen_offsets && !x.bias_offsets && !x.mask_row)) return;
  expect_f32(logits, "cuda logits_process");
  logits_process_kernel<<<x.R, kProcessThreads, 0, stream>>>(logits.ptr<float>(), logits.stride, int(logits.cols), x);
  BG_CUDA_CHECK_LAUNCH("logits_process");
}

void launch_logprobs_sampled(const Tensor& logits, const SampleExtrasDev& x, const int32_t* ids,
                             cudaStream_t stream) {
  if (x.R == 0 || !x.top_logprobs) return;
  logprobs_sampled_kernel<<<(x.R + 127) / 128, 128, 0, stream>>>(logits.ptr<float>(), logits.stride,
                                                                 int(logits.cols), x, ids);
  BG_CUDA_CHECK_LAUNCH("logprobs_sampled");
}

}  // namespace cuda
}  // namespace bg
