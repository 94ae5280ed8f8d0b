// Sampling on the GPU: sample_row_cpu's definition (src/sample/sampler.h), token
// for token. Greedy rows are an argmax. A sampled row needs, after its max, only
// a histogram of probability levels (sample_levels.h): every token of a level has
// the same integer weight, so top-k, top-p and the draw are resolved on the
// 10,240-bin histogram (exact integer sums, any addition order), and only the
// drawn level's tokens are ever put in order to pick the j-th.
//
// Two kernels:
//  - v1, one 1024-thread block per row reading the row from global memory: an
//    argmax pass, a histogram pass, a pass gathering the drawn level (a radix
//    select on the level's keys when it holds more than kV1Gather tokens). Any
//    device, any vocabulary; also the greedy kernel (one pass, ~92% of copy).
//  - v2 (sm_90, BG_CUDA_SAMPLE=2; slower than v1 where measured), a cluster of 8
//    blocks per row: each block loads an eighth of
//    the row into shared memory once, and every later pass reads shared memory;
//    maxima, histograms and the drawn level's tokens are exchanged through
//    distributed shared memory. One read of the logits from HBM, like greedy.
//    A row whose drawn level holds more than kV2Gather tokens is marked -1 and
//    finished by v1 in a second launch (which skips every other row).
#include <cooperative_groups.h>

#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "sample/sample_levels.h"

namespace bg {
namespace cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kLevelsPerThread = kSampleLevels / kThreads;
static_assert(kLevelsPerThread * kThreads == kSampleLevels, "levels split evenly over the threads");
constexpr int kV1Gather = kSampleLevels / 2;  // Cand entries that fit over the histogram
constexpr int kCluster = 8;
constexpr int kSliceLevels = kSampleLevels / kCluster;
constexpr int kV2Gather = kSampleLevels / 4;  // per block: its own list, then rank 0's gathered one

__constant__ uint64_t c_octave[256] = {BG_SAMPLE_OCTAVE_TABLE};

struct Cand {
  float x;
  int32_t id;
};
// Candidate order: logit descending, then id ascending (no NaN among candidates).
__device__ __forceinline__ bool cand_before(const Cand& a, const Cand& b) {
  return a.x != b.x ? a.x > b.x : a.id < b.id;
}

// Order-preserving key of a logit. -0.0 and +0.0 are the same value (the CPU
// sampler ties them and orders them by id), so they get the same key.
__device__ __forceinline__ uint32_t order_key(float x) {
  const uint32_t u = __float_as_uint(x == 0.0f ? 0.0f : x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ void best_merge(float& best, int& best_id, float v, int id) {
  if (v > best || (v == best && id < best_id)) {
    best = v;
    best_id = id;
  }
}

// Scratch of the block-wide helpers below.
struct BlockScratch {
  unsigned long long warp_tot[32];
  float best_val[32];
  int best_id[32];
  int level;
  unsigned long long before, fb_before;
};

// Exclusive prefix over the block of one u64 per thread.
__device__ unsigned long long block_exclusive_scan_u64(unsigned long long v, BlockScratch& s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  unsigned long long incl = v;
  for (int o = 1; o < 32; o <<= 1) {
    const unsigned long long y = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += y;
  }
  __syncthreads();
  if (lane == 31) s.warp_tot[warp] = incl;
  __syncthreads();
  unsigned long long base = 0;
  for (int w = 0; w < warp; ++w) base += s.warp_tot[w];
  return base + incl - v;
}

__device__ unsigned long long block_sum_u64(unsigned long long v, BlockScratch& s) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) s.warp_tot[threadIdx.x >> 5] = v;
  __syncthreads();
  unsigned long long t = 0;
  for (int w = 0; w < kThreads / 32; ++w) t += s.warp_tot[w];
  __syncthreads();
  return t;
}

// Argmax over the block of per-thread (best, id); every thread gets the result.
__device__ void block_argmax(float& best, int& best_id, BlockScratch& s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, best_id, o);
    best_merge(best, best_id, ov, oi);
  }
  __syncthreads();
  if (lane == 0) {
    s.best_val[warp] = best;
    s.best_id[warp] = best_id;
  }
  __syncthreads();
  best = s.best_val[0];
  best_id = s.best_id[0];
  for (int w = 1; w < kThreads / 32; ++w) best_merge(best, best_id, s.best_val[w], s.best_id[w]);
  __syncthreads();
}

// The kept tokens as level counts: levels [0, last) whole, last_n tokens of `last`.
struct Kept {
  int last;
  unsigned long long last_n;
};

__device__ __forceinline__ unsigned long long level_n(const uint32_t* count, const Kept& k, int l) {
  return l == k.last ? k.last_n : count[l];
}

// sampler.cpp's level_cross: the first level whose running total of weights
// (1 per token when by_count, else the level's weight) crosses target (> when
// strict, >= otherwise), and the total before it. Each thread owns 10 levels; a
// block scan gives its start; the one thread whose levels cross walks them.
__device__ void level_cross(const uint32_t* count, const uint64_t* octave, const Kept& k, bool by_count,
                            unsigned long long target, bool strict, BlockScratch& s, int* level,
                            unsigned long long* before) {
  const int lo = threadIdx.x * kLevelsPerThread, hi = min(lo + kLevelsPerThread, k.last + 1);
  auto w = [&](int l) { return level_n(count, k, l) * (by_count ? 1ull : sample_level_weight(octave, l)); };
  auto ok = [&](unsigned long long v) { return strict ? v > target : v >= target; };
  unsigned long long mine = 0;
  for (int l = lo; l < hi; ++l) mine += w(l);
  const unsigned long long base = block_exclusive_scan_u64(mine, s);
  if (threadIdx.x == 0) s.level = -1;
  __syncthreads();
  if (lo < hi) {
    bool check = !ok(base) && ok(base + mine);
    unsigned long long cum = base;
    for (int l = lo; l < hi; ++l) {
      const unsigned long long through = cum + w(l);
      if (check && ok(through)) {
        s.level = l;
        s.before = cum;
        check = false;
      }
      if (l == k.last) s.fb_before = cum;
      cum = through;
    }
  }
  __syncthreads();
  if (s.level >= 0) {
    *level = s.level;
    *before = s.before;
  } else {  // unreachable, as in sampler.cpp
    *level = k.last;
    *before = s.fb_before;
  }
  __syncthreads();
}

struct Pick {
  int level;
  unsigned int index;  // 0-based, in (logit desc, id asc) order within the level
};

// sample_row_cpu between the histogram and the drawn level: top-k, top-p and the
// draw on the level counts [0, cap] of one row.
__device__ Pick select_levels(const uint32_t* count, const uint64_t* octave, int cap, const SampleRow& sp,
                              BlockScratch& s) {
  Kept k{cap, count[cap]};
  const int lo = threadIdx.x * kLevelsPerThread, hi = min(lo + kLevelsPerThread, cap + 1);
  unsigned long long n = 0;
  for (int l = lo; l < hi; ++l) n += count[l];
  n = block_sum_u64(n, s);
  int level;
  unsigned long long before;
  if (sp.top_k > 0 && (unsigned long long)sp.top_k < n) {
    level_cross(count, octave, k, true, (unsigned long long)sp.top_k, false, s, &level, &before);
    k.last = level;
    k.last_n = (unsigned long long)sp.top_k - before;
  }
  unsigned long long mass = 0;
  for (int l = lo; l < min(hi, k.last + 1); ++l) mass += level_n(count, k, l) * sample_level_weight(octave, l);
  mass = block_sum_u64(mass, s);
  if (sp.top_p < 1.0f) {
    const unsigned long long need = (unsigned long long)ceil(double(sp.top_p) * double(mass));
    level_cross(count, octave, k, false, need, false, s, &level, &before);
    const unsigned long long w = sample_level_weight(octave, level);
    const unsigned long long m = need > before ? (need - before + w - 1) / w : 1;
    k.last_n = min(m, level_n(count, k, level));
    k.last = level;
    mass = before + k.last_n * w;
  }
  const unsigned long long target =
      (unsigned long long)floor(double(rng_uniform(sp.seed, sp.position)) * double(mass));
  level_cross(count, octave, k, false, target, true, s, &level, &before);
  const unsigned long long j =
      min((target - min(target, before)) / sample_level_weight(octave, level), level_n(count, k, level) - 1);
  return Pick{level, (unsigned int)j};
}

// Writes the id of the candidate of rank `index` among cand[0, n) (all distinct
// ids, so ranks are 0..n-1 and exactly one thread writes).
__device__ void pick_by_rank(const Cand* cand, int n, unsigned int index, int32_t* out) {
  for (int e = threadIdx.x; e < n; e += blockDim.x) {
    const Cand me = cand[e];
    unsigned int rank = 0;
    for (int f = 0; f < n; ++f) rank += cand_before(cand[f], me) ? 1u : 0u;
    if (rank == index) *out = me.id;
  }
}

// Exclusive prefix over the block of one int per thread.
__device__ int block_exclusive_scan_int(int v, BlockScratch& s) {
  return int(block_exclusive_scan_u64((unsigned long long)v, s));
}

// --- v1: one block per row ------------------------------------------------------

struct V1Shared {
  union {
    uint32_t count[kSampleLevels];
    Cand cand[kV1Gather];
  };
  uint64_t octave[256];
  unsigned int digit_count[256];
  BlockScratch s;
  int ngather, digit, found_id;
  unsigned int above;
};

// The token of rank `index` among the row's tokens of `level`, when there are too
// many to gather: a radix select on their keys (8 bits a pass, counts only), then
// the ties of the selected key in id order.
__device__ int nth_in_level(const float* x, int vocab, float m, float c, int level, unsigned int index,
                            V1Shared& sh) {
  const int tid = threadIdx.x;
  uint32_t prefix = 0, mask = 0;
  unsigned int above = 0;
  for (int pass = 0; pass < 4; ++pass) {
    const int shift = 24 - 8 * pass;
    if (tid < 256) sh.digit_count[tid] = 0;
    __syncthreads();
    for (int i = tid; i < vocab; i += kThreads) {
      const float xi = x[i];
      const uint32_t key = order_key(xi);
      if ((key & mask) != prefix || sample_level(xi, m, c) != level) continue;
      atomicAdd(&sh.digit_count[(key >> shift) & 255], 1u);
    }
    __syncthreads();
    if (tid == 0) {
      unsigned int a = above;
      int chosen = 0;
      for (int d = 255; d >= 0; --d) {
        const unsigned int n = sh.digit_count[d];
        if (n == 0) continue;
        chosen = d;
        if (a + n > index) break;
        a += n;
      }
      sh.digit = chosen;
      sh.above = a;
    }
    __syncthreads();
    prefix |= uint32_t(sh.digit) << shift;
    mask |= 255u << shift;
    above = sh.above;
    __syncthreads();
  }
  // Ties of the selected key (one logit value, hence one level) in id order:
  // contiguous id ranges per thread, then a block scan.
  const int j = int(index - above);
  const int chunk = (vocab + kThreads - 1) / kThreads;
  const int lo = min(vocab, tid * chunk), hi = min(vocab, lo + chunk);
  int mine = 0;
  for (int i = lo; i < hi; ++i) mine += (order_key(x[i]) == prefix && !(x[i] != x[i])) ? 1 : 0;
  const int before = block_exclusive_scan_int(mine, sh.s);
  if (tid == 0) sh.found_id = -1;
  __syncthreads();
  if (j >= before && j < before + mine) {
    int seen = before;
    for (int i = lo; i < hi; ++i) {
      if (order_key(x[i]) == prefix && !(x[i] != x[i])) {
        if (seen == j) {
          sh.found_id = i;
          break;
        }
        ++seen;
      }
    }
  }
  __syncthreads();
  return sh.found_id;
}

// only_unset: rows whose out_ids entry is already >= 0 are skipped (v2's leftovers).
__global__ void __launch_bounds__(kThreads) sample_v1_kernel(const float* __restrict__ logits, int64_t stride,
                                                             int vocab, const SampleRow* __restrict__ rows,
                                                             int32_t* __restrict__ out_ids, bool only_unset) {
  __shared__ V1Shared sh;
  const int tid = threadIdx.x, row = blockIdx.x;
  if (only_unset && out_ids[row] >= 0) return;
  const SampleRow sp = rows[row];
  const float* x = logits + int64_t(row) * stride;

  float best = -INFINITY;  // NaN never compares greater
  int best_id = INT_MAX;
  for (int i = tid; i < vocab; i += kThreads) best_merge(best, best_id, x[i], i);
  block_argmax(best, best_id, sh.s);
  if (best_id == INT_MAX || !(best > -INFINITY)) {  // every logit -inf or NaN
    if (tid == 0) out_ids[row] = 0;
    return;
  }
  if (sp.temperature == 0.0f || sp.top_k == 1) {
    if (tid == 0) out_ids[row] = best_id;
    return;
  }

  for (int l = tid; l < kSampleLevels; l += kThreads) sh.count[l] = 0;
  if (tid < 256) sh.octave[tid] = c_octave[tid];
  __syncthreads();
  const float c = sample_level_coef(sp.temperature);
  const int cap = sample_level_cap(sh.octave, sp.min_p);
  for (int i = tid; i < vocab; i += kThreads) {
    const int l = sample_level(x[i], best, c);
    if (l <= cap) atomicAdd(&sh.count[l], 1u);
  }
  __syncthreads();
  const Pick pick = select_levels(sh.count, sh.octave, cap, sp, sh.s);
  const unsigned int n = sh.count[pick.level];
  if (tid == 0) sh.ngather = 0;
  __syncthreads();  // the histogram is read; its room becomes the candidate list
  if (n <= unsigned(kV1Gather)) {
    for (int i = tid; i < vocab; i += kThreads) {
      const float xi = x[i];
      if (sample_level(xi, best, c) == pick.level) sh.cand[atomicAdd(&sh.ngather, 1)] = Cand{xi, i};
    }
    __syncthreads();
    pick_by_rank(sh.cand, sh.ngather, pick.index, out_ids + row);
  } else {
    const int id = nth_in_level(x, vocab, best, c, pick.level, pick.index, sh);
    if (tid == 0) out_ids[row] = id >= 0 ? id : best_id;  // id < 0 cannot happen
  }
}

// --- v2: a cluster of 8 blocks per row, the row in shared memory ---------------

static_assert(2 * kV2Gather * 8 <= kSampleLevels * 4, "v2's two candidate lists fit over the histogram");

struct V2Misc {
  BlockScratch s;
  float best_val;
  int best_id;
  int mode;  // 0: gather pick.level; 1: too many tokens there, v1 finishes the row
  int level;
  unsigned int index;
  int ncand;
  int offsets[kCluster + 1];
};

// Dynamic shared memory of a v2 block: the chunk (chunk_len floats), the level
// histogram (later the candidate lists), this block's slice of the summed
// histogram, the octave table, V2Misc.
size_t v2_smem_bytes(int chunk_len) {
  return size_t(chunk_len) * 4 + size_t(kSampleLevels) * 4 + size_t(kSliceLevels) * 4 + 256 * 8 + sizeof(V2Misc);
}

__global__ void __launch_bounds__(kThreads, 1)
    sample_v2_kernel(const float* __restrict__ logits, int64_t stride, int vocab, int chunk_len, bool vec,
                     const SampleRow* __restrict__ rows, int32_t* __restrict__ out_ids) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  cg::cluster_group cluster = cg::this_cluster();
  extern __shared__ __align__(16) unsigned char smem[];
  float* chunk = reinterpret_cast<float*>(smem);
  uint32_t* count = reinterpret_cast<uint32_t*>(smem + size_t(chunk_len) * 4);
  uint32_t* slice = count + kSampleLevels;
  uint64_t* octave = reinterpret_cast<uint64_t*>(slice + kSliceLevels);
  V2Misc& misc = *reinterpret_cast<V2Misc*>(octave + 256);
  Cand* list = reinterpret_cast<Cand*>(count);  // after the selection
  Cand* gathered = list + kV2Gather;

  const int tid = threadIdx.x;
  const int rank = int(cluster.block_rank()), row = blockIdx.x / kCluster;
  const SampleRow sp = rows[row];
  const float* x = logits + int64_t(row) * stride;
  const int lo = rank * chunk_len;
  const int n = max(0, min(chunk_len, vocab - lo));

  for (int l = tid; l < kSampleLevels; l += kThreads) count[l] = 0;
  if (tid < 256) octave[tid] = c_octave[tid];

  // Load this block's chunk once; its argmax on the way.
  float best = -INFINITY;
  int best_id = INT_MAX;
  if (vec) {
    const float4* src = reinterpret_cast<const float4*>(x + lo);
    float4* dst = reinterpret_cast<float4*>(chunk);
    const int n4 = n / 4;
    for (int base = 0; base < n4; base += kThreads * 8) {
      float4 v[8];
#pragma unroll
      for (int u = 0; u < 8; ++u) {
        const int i = base + u * kThreads + tid;
        if (i < n4) v[u] = __ldg(src + i);
      }
#pragma unroll
      for (int u = 0; u < 8; ++u) {
        const int i = base + u * kThreads + tid;
        if (i < n4) {
          dst[i] = v[u];
          const int id = lo + 4 * i;
          best_merge(best, best_id, v[u].x, id);
          best_merge(best, best_id, v[u].y, id + 1);
          best_merge(best, best_id, v[u].z, id + 2);
          best_merge(best, best_id, v[u].w, id + 3);
        }
      }
    }
    for (int i = n4 * 4 + tid; i < n; i += kThreads) {
      chunk[i] = x[lo + i];
      best_merge(best, best_id, chunk[i], lo + i);
    }
  } else {
    for (int i = tid; i < n; i += kThreads) {
      chunk[i] = x[lo + i];
      best_merge(best, best_id, chunk[i], lo + i);
    }
  }
  block_argmax(best, best_id, misc.s);
  if (tid == 0) {
    misc.best_val = best;
    misc.best_id = best_id;
  }
  cluster.sync();  // A: every block's argmax published
  if (tid == 0) {
    float b = -INFINITY;
    int bi = INT_MAX;
    for (int r = 0; r < kCluster; ++r) {
      const V2Misc* other = cluster.map_shared_rank(&misc, r);
      best_merge(b, bi, other->best_val, other->best_id);
    }
    misc.s.best_val[0] = b;
    misc.s.best_id[0] = bi;
  }
  __syncthreads();
  best = misc.s.best_val[0];
  best_id = misc.s.best_id[0];
  cluster.sync();  // B: nobody reads another block's argmax any more
  if (best_id == INT_MAX || !(best > -INFINITY)) {
    if (rank == 0 && tid == 0) out_ids[row] = 0;
    return;
  }
  if (sp.temperature == 0.0f || sp.top_k == 1) {
    if (rank == 0 && tid == 0) out_ids[row] = best_id;
    return;
  }

  // This block's level histogram, from shared memory.
  const float c = sample_level_coef(sp.temperature);
  const int cap = sample_level_cap(octave, sp.min_p);
  for (int i = tid; i < n; i += kThreads) {
    const int l = sample_level(chunk[i], best, c);
    if (l <= cap) atomicAdd(&count[l], 1u);
  }
  cluster.sync();  // C: histograms complete
  // Block r sums slice r of the eight histograms.
  for (int l = tid; l < kSliceLevels; l += kThreads) {
    uint32_t t = 0;
    for (int r = 0; r < kCluster; ++r) t += cluster.map_shared_rank(count, r)[rank * kSliceLevels + l];
    slice[l] = t;
  }
  cluster.sync();  // D: slices complete; histograms free
  if (rank == 0) {
    for (int l = tid; l < kSampleLevels; l += kThreads)
      count[l] = cluster.map_shared_rank(slice, l / kSliceLevels)[l % kSliceLevels];
    __syncthreads();
    const Pick pick = select_levels(count, octave, cap, sp, misc.s);
    if (tid == 0) {
      misc.mode = count[pick.level] > unsigned(kV2Gather) ? 1 : 0;
      misc.level = pick.level;
      misc.index = pick.index;
      if (misc.mode == 1) out_ids[row] = -1;
    }
  }
  cluster.sync();  // E: the pick published; slices free
  if (tid == 0) {
    const V2Misc* head = cluster.map_shared_rank(&misc, 0);
    misc.s.level = head->mode == 0 ? head->level : -1;
    misc.ncand = 0;
  }
  __syncthreads();
  const int level = misc.s.level;
  if (level >= 0) {
    for (int i = tid; i < n; i += kThreads) {
      const float xi = chunk[i];
      if (sample_level(xi, best, c) == level) list[atomicAdd(&misc.ncand, 1)] = Cand{xi, lo + i};
    }
  }
  cluster.sync();  // F: every block's list of the drawn level complete
  if (rank == 0 && level >= 0) {
    if (tid == 0) {
      int total = 0;
      for (int r = 0; r < kCluster; ++r) {
        misc.offsets[r] = total;
        total += cluster.map_shared_rank(&misc, r)->ncand;
      }
      misc.offsets[kCluster] = total;
    }
    __syncthreads();
    for (int r = 0; r < kCluster; ++r) {
      const Cand* theirs = cluster.map_shared_rank(list, r);
      const int off = misc.offsets[r], cnt = misc.offsets[r + 1] - off;
      for (int e = tid; e < cnt; e += kThreads) gathered[off + e] = theirs[e];
    }
    __syncthreads();
    pick_by_rank(gathered, misc.offsets[kCluster], misc.index, out_ids + row);
  }
  cluster.sync();  // G: rank 0 is done reading the others' lists
#else
  __trap();  // launched only on sm_90 and newer
#endif
}

// Whether v2 can run on the current device for this vocabulary: sm_90+, the chunk
// fits the shared memory a block may opt into, and a cluster of 8 such blocks
// can be resident. Cached per (device, chunk length).
bool v2_usable(int chunk_len) {
  static thread_local int cached_dev = -1, cached_chunk = -1;
  static thread_local bool cached_ok = false;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  if (dev == cached_dev && chunk_len == cached_chunk) return cached_ok;
  cached_dev = dev;
  cached_chunk = chunk_len;
  cached_ok = false;
  int major = 0, optin = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  const size_t smem = v2_smem_bytes(chunk_len);
  if (major < 9 || smem > size_t(optin)) return false;
  if (cudaFuncSetAttribute(sample_v2_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)) !=
      cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(kCluster);
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = smem;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = kCluster;
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  int clusters = 0;
  if (cudaOccupancyMaxActiveClusters(&clusters, sample_v2_kernel, &cfg) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  cached_ok = clusters > 0;
  return cached_ok;
}

int v2_chunk_len(int vocab) { return int((ceil_div(vocab, kCluster) + 3) / 4 * 4); }

// v1 is the default: on an H100 (2026-12-08, kernel_bench) a sampled row cost 3.4-3.7x a
// greedy row on v1 and 4.7-6.6x on v2, at 64 to 1,024 rows of a 256k vocabulary.
// BG_CUDA_SAMPLE=2 puts sampled batches on v2.
bool v2_enabled_by_env() {
  const char* v = std::getenv("BG_CUDA_SAMPLE");
  return v && std::strcmp(v, "2") == 0;
}

}  // namespace

bool sample_v2_available(int32_t vocab) {
  return vocab >= kCluster * kThreads && v2_usable(v2_chunk_len(vocab));
}

void launch_sample(const Tensor& logits, const SampleRow* rows, int32_t R, int32_t* out_ids,
                   cudaStream_t stream, bool any_sampled, int variant) {
  if (R == 0) return;
  if (logits.dtype != DType::f32)
    throw EngineError(ErrorCode::internal, "cuda sample: logits must be f32");
  const int vocab = int(logits.cols);
  const bool v2 = variant == 2 || (variant == 0 && any_sampled && v2_enabled_by_env());
  if (v2 && sample_v2_available(vocab)) {
    const int chunk_len = v2_chunk_len(vocab);
    const bool vec = logits.stride % 4 == 0 && reinterpret_cast<uintptr_t>(logits.data) % 16 == 0;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(unsigned(R) * kCluster);
    cfg.blockDim = dim3(kThreads);
    cfg.dynamicSmemBytes = v2_smem_bytes(chunk_len);
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = kCluster;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    check_cuda(cudaLaunchKernelEx(&cfg, sample_v2_kernel, logits.ptr<float>(), logits.stride, vocab, chunk_len,
                                  vec, rows, out_ids),
               "sample v2", __FILE__, __LINE__);
    sample_v1_kernel<<<R, kThreads, 0, stream>>>(logits.ptr<float>(), logits.stride, vocab, rows, out_ids, true);
    BG_CUDA_CHECK_LAUNCH("sample v1 (v2's leftover rows)");
    return;
  }
  if (variant == 2) throw EngineError(ErrorCode::internal, "cuda sample: v2 is not available on this device");
  sample_v1_kernel<<<R, kThreads, 0, stream>>>(logits.ptr<float>(), logits.stride, vocab, rows, out_ids, false);
  BG_CUDA_CHECK_LAUNCH("sample v1");
}

}  // namespace cuda
}  // namespace bg
