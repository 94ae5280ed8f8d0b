// Sampling on the GPU, one block per row of f32 logits, computing what
// sample_row_cpu (src/sample/sampler.cpp) computes:
//   greedy (temperature 0 or top_k 1): argmax, ties to the lowest id, NaN ignored;
//   else p_i = exp((logit_i - max) / T) in double, kept when p_i > 0 and >= min_p;
//   top-k keeps the first k in (p desc, id asc) order; top-p the shortest prefix of
//   that order whose mass reaches top_p of the kept mass; the token is the first in
//   that order whose cumulative mass exceeds u * kept mass, u = rng_uniform(seed, pos).
//
// Without sorting 256k candidates: p is a monotone function of the logit, so "the
// first element of the order whose cumulative count/mass crosses a target" is a
// radix select on the logit's order-preserving 32-bit key, 8 bits per pass, with
// per-digit counts and masses in shared memory, then a scan over the tied keys in
// id order. Masses are fixed point (2^-40 units) so their sums are exact integers:
// the result is the same whatever order the threads add in (deterministic), and
// equals the CPU's double sums except when u lands within ~1e-12 of a boundary.
#include <cfloat>
#include <climits>
#include <cmath>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_kernels.h"

namespace bg {
namespace cuda {
namespace {

constexpr int kThreads = 1024;
constexpr double kFixedOne = 1099511627776.0;  // 2^40: p <= 1, 256k of them < 2^58

// Order-preserving key of a logit. -0.0 and +0.0 are the same value (the CPU
// sampler ties them and orders them by id), so they get the same key.
__device__ __forceinline__ uint32_t order_key(float x) {
  const uint32_t u = __float_as_uint(x == 0.0f ? 0.0f : x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

struct RowSpec {
  const float* x;
  int vocab;
  double max_logit, inv_t, min_p;
  // Current cut: an element is in when its key > cut_key, or == cut_key with id <= cut_id.
  bool has_cut;
  uint32_t cut_key;
  int cut_id;
};

// Kept by min-p / underflow and inside the cut; p returned through *p.
__device__ __forceinline__ bool kept(const RowSpec& r, int i, float xi, uint32_t key, double* p) {
  if (!(xi > -INFINITY)) return false;  // -inf and NaN
  if (r.has_cut && (key < r.cut_key || (key == r.cut_key && i > r.cut_id))) return false;
  const double q = exp((double(xi) - r.max_logit) * r.inv_t);
  if (q == 0.0 || q < r.min_p) return false;
  *p = q;
  return true;
}

__device__ __forceinline__ uint64_t fixed(double p) { return uint64_t(p * kFixedOne + 0.5); }

struct Shared {
  unsigned long long mass[256];
  unsigned int count[256];
  unsigned long long red_u64[32];
  int scan[32];
  uint32_t prefix;
  unsigned long long above;
  int digit;
  int found_id;
  float best_val[32];
  int best_id[32];
};

__device__ unsigned long long block_sum_u64(unsigned long long v, Shared& sh) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) sh.red_u64[threadIdx.x >> 5] = v;
  __syncthreads();
  unsigned long long t = 0;
  for (int w = 0; w < kThreads / 32; ++w) t += sh.red_u64[w];
  return t;
}

// Exclusive prefix over the block of one int per thread.
__device__ int block_exclusive_scan(int v, Shared& sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int incl = v;
  for (int o = 1; o < 32; o <<= 1) {
    const int y = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += y;
  }
  __syncthreads();
  if (lane == 31) sh.scan[warp] = incl;
  __syncthreads();
  int base = 0;
  for (int w = 0; w < warp; ++w) base += sh.scan[w];
  return base + incl - v;
}

struct Selected {
  int id;
  unsigned long long cum_through;  // count or mass up to and including the element
};

// The first element, in (key desc, id asc) order over the kept elements, whose
// cumulative weight w (1 when by_count, else fixed-point p) reaches the target:
// cum > target when strict, cum >= target otherwise. When none does (rounding),
// the last kept element. Requires at least one kept element.
__device__ Selected select(const RowSpec& r, bool by_count, unsigned long long target, bool strict,
                           Shared& sh) {
  const int tid = threadIdx.x;
  uint32_t prefix = 0, mask = 0;
  unsigned long long above = 0;
  unsigned int ties = 0;
  unsigned long long tie_mass = 0;
  for (int pass = 0; pass < 4; ++pass) {
    const int shift = 24 - 8 * pass;
    for (int d = tid; d < 256; d += kThreads) {
      sh.mass[d] = 0;
      sh.count[d] = 0;
    }
    __syncthreads();
    for (int i = tid; i < r.vocab; i += kThreads) {
      const float xi = r.x[i];
      const uint32_t key = order_key(xi);
      if ((key & mask) != prefix) continue;
      double p;
      if (!kept(r, i, xi, key, &p)) continue;
      const int d = (key >> shift) & 255;
      atomicAdd(&sh.count[d], 1u);
      atomicAdd(&sh.mass[d], by_count ? 1ull : (unsigned long long)fixed(p));
    }
    __syncthreads();
    if (tid == 0) {
      int chosen = -1;
      unsigned long long a = above, a_chosen = above;
      for (int d = 255; d >= 0; --d) {
        if (sh.count[d] == 0) continue;
        chosen = d;
        a_chosen = a;
        const unsigned long long through = a + sh.mass[d];
        if (strict ? through > target : through >= target) break;
        a = through;
      }
      sh.digit = chosen < 0 ? 0 : chosen;
      sh.above = a_chosen;
    }
    __syncthreads();
    const int d = sh.digit;
    above = sh.above;
    prefix |= uint32_t(d) << shift;
    mask |= 255u << shift;
    ties = sh.count[d];
    tie_mass = sh.mass[d];
    __syncthreads();
  }
  // Every tie has the same logit, hence the same weight.
  const unsigned long long w = ties ? tie_mass / ties : 0;
  long long j;
  if (w == 0) {
    j = ties - 1;
  } else {
    const unsigned long long need = target > above ? target - above : 0;
    j = strict ? (long long)(need / w) : (long long)((need + w - 1) / w) - 1;
  }
  if (j < 0) j = 0;
  if (j > (long long)ties - 1) j = (long long)ties - 1;

  // The j-th tie in id order: contiguous id ranges per thread, then a block scan.
  const int chunk = (r.vocab + kThreads - 1) / kThreads;
  const int lo = min(r.vocab, tid * chunk), hi = min(r.vocab, lo + chunk);
  int mine = 0;
  for (int i = lo; i < hi; ++i) {
    const float xi = r.x[i];
    double p;
    if (order_key(xi) == prefix && kept(r, i, xi, prefix, &p)) ++mine;
  }
  const int before = block_exclusive_scan(mine, sh);
  if (tid == 0) sh.found_id = -1;
  __syncthreads();
  if (j >= before && j < before + mine) {
    int seen = before;
    for (int i = lo; i < hi; ++i) {
      const float xi = r.x[i];
      double p;
      if (order_key(xi) == prefix && kept(r, i, xi, prefix, &p)) {
        if (seen == j) {
          sh.found_id = i;
          break;
        }
        ++seen;
      }
    }
  }
  __syncthreads();
  Selected s;
  s.id = sh.found_id;
  s.cum_through = above + (unsigned long long)(j + 1) * w;
  __syncthreads();
  return s;
}

__global__ void __launch_bounds__(kThreads) sample_kernel(const float* __restrict__ logits,
                                                          int64_t stride, int vocab,
                                                          const SampleRow* __restrict__ rows,
                                                          int32_t* __restrict__ out_ids) {
  __shared__ Shared sh;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const SampleRow sp = rows[blockIdx.x];
  const float* x = logits + int64_t(blockIdx.x) * stride;

  // Argmax, first index on ties; NaN never compares greater.
  float best = -INFINITY;
  int best_id = INT_MAX;
  for (int i = tid; i < vocab; i += kThreads) {
    const float v = x[i];
    if (v > best) {
      best = v;
      best_id = i;
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, best_id, o);
    if (ov > best || (ov == best && oi < best_id)) {
      best = ov;
      best_id = oi;
    }
  }
  if (lane == 0) {
    sh.best_val[warp] = best;
    sh.best_id[warp] = best_id;
  }
  __syncthreads();
  best = sh.best_val[0];
  best_id = sh.best_id[0];
  for (int w = 1; w < kThreads / 32; ++w) {
    if (sh.best_val[w] > best || (sh.best_val[w] == best && sh.best_id[w] < best_id)) {
      best = sh.best_val[w];
      best_id = sh.best_id[w];
    }
  }
  if (best_id == INT_MAX || !(best > -INFINITY)) {  // every logit -inf or NaN
    if (tid == 0) out_ids[blockIdx.x] = 0;
    return;
  }
  if (sp.temperature == 0.0f || sp.top_k == 1) {
    if (tid == 0) out_ids[blockIdx.x] = best_id;
    return;
  }

  RowSpec r;
  r.x = x;
  r.vocab = vocab;
  r.max_logit = double(best);
  r.inv_t = 1.0 / double(sp.temperature);
  r.min_p = double(sp.min_p);
  r.has_cut = false;
  r.cut_key = 0;
  r.cut_id = 0;

  // Kept count and mass.
  unsigned long long n = 0, mass = 0;
  for (int i = tid; i < vocab; i += kThreads) {
    const float xi = x[i];
    double p;
    if (kept(r, i, xi, order_key(xi), &p)) {
      ++n;
      mass += fixed(p);
    }
  }
  n = block_sum_u64(n, sh);
  mass = block_sum_u64(mass, sh);

  if (sp.top_k > 0 && (unsigned long long)sp.top_k < n) {
    const Selected k = select(r, true, (unsigned long long)sp.top_k, false, sh);
    r.has_cut = true;
    r.cut_key = order_key(x[k.id]);
    r.cut_id = k.id;
    mass = 0;
    for (int i = tid; i < vocab; i += kThreads) {
      const float xi = x[i];
      double p;
      if (kept(r, i, xi, order_key(xi), &p)) mass += fixed(p);
    }
    mass = block_sum_u64(mass, sh);
  }
  unsigned long long kept_mass = mass;
  if (sp.top_p < 1.0f) {
    const unsigned long long need = (unsigned long long)ceil(double(sp.top_p) * double(mass));
    const Selected c = select(r, false, need, false, sh);
    r.has_cut = true;
    r.cut_key = order_key(x[c.id]);
    r.cut_id = c.id;
    kept_mass = c.cum_through;
  }
  const double u = double(rng_uniform(sp.seed, sp.position));
  const unsigned long long target = (unsigned long long)floor(u * double(kept_mass));
  const Selected s = select(r, false, target, true, sh);
  if (tid == 0) out_ids[blockIdx.x] = s.id >= 0 ? s.id : best_id;  // s.id < 0 cannot happen
}

}  // namespace

void launch_sample(const Tensor& logits, const SampleRow* rows, int32_t R, int32_t* out_ids,
                   cudaStream_t stream) {
  if (R == 0) return;
  if (logits.dtype != DType::f32)
    throw EngineError(ErrorCode::internal, "cuda sample: logits must be f32");
  sample_kernel<<<R, kThreads, 0, stream>>>(logits.ptr<float>(), logits.stride, int(logits.cols),
                                            rows, out_ids);
  BG_CUDA_CHECK_LAUNCH("sample");
}

}  // namespace cuda
}  // namespace bg
