// Causal attention over the paged KV cache, for prefill chunks and decode tokens in
// one launch (flash-attention 2 style on mma.sync bf16 tensor cores).
//
// Work item = (sequence, KV head, tile of 64 packed query rows). A packed row is one
// (query token, q head of this KV head's group) pair, row = token * group + head, so
// with grouped/multi-query attention the group's heads share every K/V tile read
// (Gemma-2B: 8 q heads per K/V head) and a decode token of a 1-head group still
// fills one row. Each of the 4 warps owns 16 rows; K and V tiles of KEYS keys are
// staged in shared memory by cp.async, double-buffered (tile j+1 loads while tile j
// is computed), and shared by the 4 warps.
//
// Numerics: S = Q K^T in f32, online softmax in base 2 with f32 running max/sum,
// P rounded to bf16 for P*V, f32 accumulation, one rounding of the output.
// Determinism: a row's keys are visited in tiles aligned to absolute key indices,
// always in the same order with the same per-tile arithmetic; tiles past a row's
// position are fully masked and change nothing exactly (alpha = 1, p = 0, and keys
// past the sequence are zero-filled). So a row's output depends only on its own
// sequence, never on the batch around it. A sliding window starts the walk at the
// tile holding the first key any row of the item may see (still aligned to absolute
// key indices); keys before it are masked and never loaded, so their blocks may be
// gone. Soft-capping applies tanh(s * scale / cap) * cap to each score in f32.
#include <algorithm>
#include <string>
#include <vector>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_kernels.h"

namespace bg {
namespace cuda {
namespace {

template <int HD, int KEYS, int STAGES>
struct AttnShape {
  static constexpr int kThreads = 128;
  static constexpr int kRows = kAttnRowsPerItem;  // 4 warps x 16 rows
  static constexpr int kStride = HD + 8;          // +16 B per row: conflict-free ldmatrix
  static constexpr int kChunks = HD / 8;          // 16-byte chunks per row
  static constexpr size_t kSmem = size_t(kRows + 2 * KEYS * STAGES) * kStride * sizeof(bf16);
};

// STAGES = 1 (variant 1): one K and one V buffer; V_j loads during Q*K_j^T and
//   K_{j+1} during P*V_j, so about one tile is in flight per block.
// STAGES = 2 (variant 2, the default): K and V double-buffered; tile j+1 loads
//   while tile j is computed, about two tiles in flight: decode attention is bound
//   by bytes in flight, and this doubles them (dev/cuda/NOTES.md).
template <int HD, int KEYS, int STAGES>
__global__ void __launch_bounds__(128) attention_kernel(AttentionArgs a, float scale_log2) {
  using S = AttnShape<HD, KEYS, STAGES>;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sq = reinterpret_cast<bf16*>(smem);
  bf16* skv = sq + S::kRows * S::kStride;  // stage s: K at 2s, V at 2s + 1 (KEYS rows each)

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int seq = a.work[2 * blockIdx.x], tile = a.work[2 * blockIdx.x + 1];
  const int kvh = blockIdx.y;
  const int G = a.num_heads / a.num_kv_heads;
  const int q0 = a.cu_seq_q[seq];
  const int qlen = a.cu_seq_q[seq + 1] - q0;
  const int ctx = a.context_lens[seq];
  const int row0 = tile * S::kRows;
  const int nrows = min(S::kRows, qlen * G - row0);
  const int first_pos = ctx - qlen;  // position of the sequence's first query token
  const int kv_len = first_pos + (row0 + nrows - 1) / G + 1;  // keys any row here may see
  // The first key any row here may see: the window of the item's first row.
  const int kv_lo = a.window > 0 ? max(0, first_pos + row0 / G - a.window + 1) : 0;
  const int j_first = kv_lo / KEYS;
  const int ntiles = (kv_len + KEYS - 1) / KEYS;

  const bf16* qkv = static_cast<const bf16*>(a.qkv);
  const bf16* kc = static_cast<const bf16*>(a.k_cache);
  const bf16* vc = static_cast<const bf16*>(a.v_cache);
  const int* btab = a.block_tables + int64_t(seq) * a.max_blocks_per_seq;

  // Q rows of this item (zero rows past nrows).
  for (int c = tid; c < S::kRows * S::kChunks; c += S::kThreads) {
    const int r = c / S::kChunks, d = (c % S::kChunks) * 8;
    const bool ok = r < nrows;
    const bf16* src = qkv;
    if (ok) {
      const int row = row0 + r;
      const int tok = row / G, h = kvh * G + row % G;
      src = qkv + int64_t(q0 + tok) * a.qkv_stride + h * HD + d;
    }
    cp_async16(sq + r * S::kStride + d, src, ok);
  }
  auto k_buf = [&](int stage) { return skv + (2 * stage) * KEYS * S::kStride; };
  auto v_buf = [&](int stage) { return skv + (2 * stage + 1) * KEYS * S::kStride; };
  // One K or V tile: keys [j*KEYS, (j+1)*KEYS), zero past kv_len. Unrolled with
  // the block-table reads first, so their latencies overlap instead of each
  // cp.async waiting for its own (variant 3 in dev/cuda/NOTES.md).
  constexpr int kLoads = KEYS * S::kChunks / S::kThreads;
  static_assert(KEYS * S::kChunks % S::kThreads == 0, "tile chunks must divide among the threads");
  const int bs_shift = a.block_size_log2;
  auto load_tile = [&](bf16* dst, const bf16* cache, int j) {
    int64_t slot[kLoads];
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int key = j * KEYS + (tid + i * S::kThreads) / S::kChunks;
      int blk = 0, off = 0;
      if (key >= kv_lo && key < kv_len) {
        if (bs_shift >= 0) {
          blk = btab[key >> bs_shift];
          off = key & (a.block_size - 1);
        } else {
          blk = btab[key / a.block_size];
          off = key % a.block_size;
        }
      }
      slot[i] = int64_t(blk) * a.block_size + off;
    }
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int c = tid + i * S::kThreads;
      const int kk = c / S::kChunks, d = (c % S::kChunks) * 8;
      const bool ok = j * KEYS + kk >= kv_lo && j * KEYS + kk < kv_len;
      cp_async16(dst + kk * S::kStride + d, ok ? cache + slot[i] * a.kv_stride + kvh * HD + d : cache, ok);
    }
  };

  const int g = lane >> 2, t4 = lane & 3;
  // Soft-capping: s * scale_log2 becomes tanh(s * scale / cap) * cap * log2(e).
  const bool capped = a.softcap > 0.0f;
  const float cap_in = capped ? a.scale / a.softcap : 0.0f;
  const float cap_out = a.softcap * 1.4426950408889634f;
  int pos[2];  // positions of this thread's two rows (g, g + 8); -1 masks a padding row
  int lo[2];   // the first key each row sees (its window)
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int r = warp * 16 + g + 8 * i;
    pos[i] = r < nrows ? first_pos + (row0 + r) / G : -1;
    lo[i] = a.window > 0 ? pos[i] - a.window + 1 : 0;
  }
  const bool active = warp * 16 < nrows;  // warp-uniform

  float o[HD / 8][4];
#pragma unroll
  for (int d = 0; d < HD / 8; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  float s[KEYS / 8][4];

  // S = Q K_j^T, masked, then the online-softmax update; s holds P (f32) after.
  auto qk_softmax = [&](const bf16* sk, int j) {
#pragma unroll
    for (int n = 0; n < KEYS / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
    for (int kd = 0; kd < HD / 16; ++kd) {
      uint32_t qa[4];
      ldmatrix_x4(qa, sq + (warp * 16 + (lane & 15)) * S::kStride + kd * 16 + (lane >> 4) * 8);
#pragma unroll
      for (int n2 = 0; n2 < KEYS / 16; ++n2) {
        uint32_t kb[4];
        ldmatrix_x4(kb, sk + (n2 * 16 + (lane & 7) + (lane >> 4) * 8) * S::kStride + kd * 16 +
                            ((lane >> 3) & 1) * 8);
        mma_bf16_16816(s[2 * n2], qa, kb[0], kb[1]);
        mma_bf16_16816(s[2 * n2 + 1], qa, kb[2], kb[3]);
      }
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      float mx = -INFINITY;
#pragma unroll
      for (int n = 0; n < KEYS / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int key = j * KEYS + n * 8 + 2 * t4 + e;
          const float raw = s[n][2 * i + e];
          const float v = key <= pos[i] && key >= lo[i]
                              ? (capped ? tanhf(raw * cap_in) * cap_out : raw * scale_log2)
                              : -INFINITY;
          s[n][2 * i + e] = v;
          mx = fmaxf(mx, v);
        }
      }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m[i], mx);
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;
      const float alpha = exp2f(m[i] - m_use);
      m[i] = m_new;
      float rs = 0.0f;
#pragma unroll
      for (int n = 0; n < KEYS / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float p = exp2f(s[n][2 * i + e] - m_use);
          s[n][2 * i + e] = p;
          rs += p;
        }
      }
      l[i] = l[i] * alpha + rs;
#pragma unroll
      for (int d = 0; d < HD / 8; ++d) {
        o[d][2 * i] *= alpha;
        o[d][2 * i + 1] *= alpha;
      }
    }
  };
  // O += P V_j.
  auto pv = [&](const bf16* sv) {
#pragma unroll
    for (int kk = 0; kk < KEYS / 16; ++kk) {
      uint32_t pa[4];
      pa[0] = pack_bf16x2(s[2 * kk][0], s[2 * kk][1]);
      pa[1] = pack_bf16x2(s[2 * kk][2], s[2 * kk][3]);
      pa[2] = pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      pa[3] = pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int d2 = 0; d2 < HD / 16; ++d2) {
        uint32_t vb[4];
        ldmatrix_x4_trans(vb, sv + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * S::kStride + d2 * 16 +
                                  (lane >> 4) * 8);
        mma_bf16_16816(o[2 * d2], pa, vb[0], vb[1]);
        mma_bf16_16816(o[2 * d2 + 1], pa, vb[2], vb[3]);
      }
    }
  };

  if constexpr (STAGES == 1) {
    load_tile(k_buf(0), kc, j_first);
    cp_async_commit();
    for (int j = j_first; j < ntiles; ++j) {
      cp_async_wait<0>();
      __syncthreads();  // K_j (and Q) in shared memory
      load_tile(v_buf(0), vc, j);
      cp_async_commit();
      if (active) qk_softmax(k_buf(0), j);
      cp_async_wait<0>();
      __syncthreads();  // V_j in shared memory; every warp is done with K_j
      if (j + 1 < ntiles) load_tile(k_buf(0), kc, j + 1);
      cp_async_commit();
      if (active) pv(v_buf(0));
      __syncthreads();  // every warp is done with V_j before it is overwritten
    }
  } else {
    load_tile(k_buf(j_first & 1), kc, j_first);
    load_tile(v_buf(j_first & 1), vc, j_first);
    cp_async_commit();
    for (int j = j_first; j < ntiles; ++j) {
      if (j + 1 < ntiles) {  // its buffer was last read in iteration j - 1, before the barrier
        load_tile(k_buf((j + 1) & 1), kc, j + 1);
        load_tile(v_buf((j + 1) & 1), vc, j + 1);
      }
      cp_async_commit();
      cp_async_wait<1>();
      __syncthreads();  // tile j (and Q) in shared memory
      if (active) {
        qk_softmax(k_buf(j & 1), j);
        pv(v_buf(j & 1));
      }
      __syncthreads();  // every warp is done with tile j before iteration j + 1 refills it
    }
  }
  cp_async_wait<0>();

  if (active) {
    bf16* out = static_cast<bf16*>(a.out);
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      float lt = l[i];
      lt += __shfl_xor_sync(0xffffffffu, lt, 1);
      lt += __shfl_xor_sync(0xffffffffu, lt, 2);
      const int r = warp * 16 + g + 8 * i;
      if (r < nrows) {
        const float inv = 1.0f / lt;
        const int row = row0 + r;
        const int tok = row / G, h = kvh * G + row % G;
        bf16* dst = out + int64_t(q0 + tok) * a.out_stride + h * HD + 2 * t4;
#pragma unroll
        for (int d = 0; d < HD / 8; ++d) {
          *reinterpret_cast<uint32_t*>(dst + d * 8) = pack_bf16x2(o[d][2 * i] * inv, o[d][2 * i + 1] * inv);
        }
      }
    }
  }
}

int max_smem_optin() {
  int dev = 0, v = 0;
  BG_CUDA_CHECK(cudaGetDevice(&dev));
  BG_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  return v;
}

template <int HD, int KEYS, int STAGES>
void launch_variant(const AttentionArgs& a, cudaStream_t stream) {
  using S = AttnShape<HD, KEYS, STAGES>;
  auto kernel = attention_kernel<HD, KEYS, STAGES>;
  BG_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(S::kSmem)));
  const float scale_log2 = a.scale * 1.4426950408889634f;
  dim3 grid(unsigned(a.num_work), unsigned(a.num_kv_heads));
  kernel<<<grid, S::kThreads, S::kSmem, stream>>>(a, scale_log2);
  BG_CUDA_CHECK_LAUNCH("attention");
}

template <int HD, int KEYS>
void launch_hd(const AttentionArgs& a, cudaStream_t stream) {
  // Variant 2 where the device has the shared memory for it (sm_80, sm_89, sm_90 do).
  if (a.variant != 1 && size_t(max_smem_optin()) >= AttnShape<HD, KEYS, 2>::kSmem) {
    launch_variant<HD, KEYS, 2>(a, stream);
  } else {
    launch_variant<HD, KEYS, 1>(a, stream);
  }
}

// Any head_dim up to kAttnMaxHeadDim, any alignment: one block per (query token, q
// head), keys in chunks of 128 aligned to key 0, f32 throughout. Slow; it serves
// head sizes the tensor-core kernel has no instance for. Same determinism argument:
// the chunking depends only on the key index.
constexpr int kSimpleThreads = 128;

__device__ float block_max128(float v, float* red) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  return fmaxf(fmaxf(red[0], red[1]), fmaxf(red[2], red[3]));
}

__device__ float block_sum128(float v, float* red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  return (red[0] + red[1]) + (red[2] + red[3]);
}

__global__ void __launch_bounds__(kSimpleThreads) attention_simple_kernel(AttentionArgs a) {
  __shared__ float sq[kAttnMaxHeadDim];
  __shared__ float sp[kSimpleThreads];
  __shared__ int64_t sslot[kSimpleThreads];
  __shared__ float red[4];
  const int t = blockIdx.x, h = blockIdx.y, tid = threadIdx.x;
  const int HD = a.head_dim, G = a.num_heads / a.num_kv_heads, kvh = h / G;
  int lo = 0, hi = a.num_seqs - 1;  // the sequence holding token t
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (a.cu_seq_q[mid] <= t) lo = mid; else hi = mid - 1;
  }
  const int s = lo;
  const int q0 = a.cu_seq_q[s], qlen = a.cu_seq_q[s + 1] - q0;
  const int nkeys = a.context_lens[s] - qlen + (t - q0) + 1;
  const int key_lo = a.window > 0 ? max(0, nkeys - a.window) : 0;  // the window's first key
  const int* btab = a.block_tables + int64_t(s) * a.max_blocks_per_seq;
  const bf16* q = static_cast<const bf16*>(a.qkv) + int64_t(t) * a.qkv_stride + h * HD;
  const bf16* kc = static_cast<const bf16*>(a.k_cache);
  const bf16* vc = static_cast<const bf16*>(a.v_cache);
  for (int d = tid; d < HD; d += kSimpleThreads) sq[d] = __bfloat162float(q[d]);
  __syncthreads();
  constexpr int kPer = kAttnMaxHeadDim / kSimpleThreads;
  float acc[kPer];
#pragma unroll
  for (int i = 0; i < kPer; ++i) acc[i] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  for (int j0 = key_lo / kSimpleThreads * kSimpleThreads; j0 < nkeys; j0 += kSimpleThreads) {
    const int j = j0 + tid;
    const bool valid = j >= key_lo && j < nkeys;
    float sc = -INFINITY;
    if (valid) {
      const int64_t slot = int64_t(btab[j / a.block_size]) * a.block_size + j % a.block_size;
      sslot[tid] = slot;
      const bf16* k = kc + slot * a.kv_stride + kvh * HD;
      float dot = 0.0f;
      for (int d = 0; d < HD; ++d) dot = fmaf(sq[d], __bfloat162float(k[d]), dot);
      sc = dot * a.scale;
      if (a.softcap > 0.0f) sc = tanhf(sc / a.softcap) * a.softcap;
    }
    const float m_new = fmaxf(m, block_max128(sc, red));
    const float alpha = m == -INFINITY ? 0.0f : expf(m - m_new);
    const float p = valid ? expf(sc - m_new) : 0.0f;
    sp[tid] = p;
    l = l * alpha + block_sum128(p, red);  // its barriers also publish sp and sslot
    const int n = min(kSimpleThreads, nkeys - j0);
    const int jj0 = max(0, key_lo - j0);  // slots before the window were not set
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int d = tid + i * kSimpleThreads;
      if (d < HD) {
        float v = acc[i] * alpha;
        for (int jj = jj0; jj < n; ++jj) v = fmaf(sp[jj], __bfloat162float(vc[sslot[jj] * a.kv_stride + kvh * HD + d]), v);
        acc[i] = v;
      }
    }
    m = m_new;
    __syncthreads();  // sp and sslot are rewritten by the next chunk
  }
  bf16* out = static_cast<bf16*>(a.out) + int64_t(t) * a.out_stride + h * HD;
  const float inv = 1.0f / l;
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int d = tid + i * kSimpleThreads;
    if (d < HD) out[d] = __float2bfloat16_rn(acc[i] * inv);
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace

int32_t attention_decode_part(int32_t head_dim, int32_t num_heads, int32_t num_kv_heads) {
  if (head_dim != 64 && head_dim != 128 && head_dim != 256) return 0;
  if (num_kv_heads <= 0 || num_heads % num_kv_heads != 0 || num_heads / num_kv_heads > 16) return 0;
  // Fewer KV heads give fewer blocks per sequence: smaller partitions, so that a
  // batch of 64 still makes a few blocks per SM (Gemma-2B MQA: 64 x 2 at 512 keys).
  return num_kv_heads <= 2 ? 256 : num_kv_heads <= 8 ? 512 : 1024;
}

namespace {
// Keys per partition for a sequence of ctx keys: decode_part, or more so that there
// are at most kAttnMaxPartitions; a multiple of 64 (the decode kernel's stages).
int32_t part_keys_for(int32_t ctx, int32_t decode_part) {
  const int64_t spread = ceil_div(ceil_div(ctx, kAttnMaxPartitions), 64) * 64;
  return int32_t(std::max<int64_t>(decode_part, spread));
}
}  // namespace

int64_t attention_partial_slots_bound(int32_t max_seqs, int32_t max_context, int32_t decode_part) {
  if (decode_part <= 0) return 0;
  return int64_t(max_seqs) * std::min<int64_t>(kAttnMaxPartitions, ceil_div(max_context, decode_part));
}

AttentionWork attention_work_build(const int32_t* cu_seq_q, const int32_t* context_lens, int32_t num_seqs,
                                   int32_t group, int32_t decode_part, std::vector<int32_t>& work) {
  AttentionWork w;
  struct Item {
    int32_t keys, seq, tile;
  };
  std::vector<Item> items;
  std::vector<int32_t> decode, combine;
  for (int32_t s = 0; s < num_seqs; ++s) {
    const int32_t q = cu_seq_q[s + 1] - cu_seq_q[s], ctx = context_lens[s];
    if (q == 0) continue;
    if (q == 1 && decode_part > 0) {
      const int32_t pk = part_keys_for(ctx, decode_part);
      const int32_t parts = int32_t(ceil_div(ctx, pk));
      const int32_t slot = parts > 1 ? w.slots : -1;
      for (int32_t p = 0; p < parts; ++p) decode.insert(decode.end(), {s, p, pk, slot});
      if (parts > 1) {
        combine.insert(combine.end(), {s, parts, slot, 0});
        w.slots += parts;
      }
      continue;
    }
    const int64_t rows = int64_t(q) * group;
    const int64_t tiles = ceil_div(rows, kAttnRowsPerItem);
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t last_row = std::min(rows, (t + 1) * kAttnRowsPerItem) - 1;
      items.push_back({int32_t(ctx - q + last_row / group + 1), s, int32_t(t)});
    }
  }
  // Longest key walks first: the short ones fill in behind them instead of a long
  // one starting last (the tail of a prefill launch).
  std::stable_sort(items.begin(), items.end(), [](const Item& x, const Item& y) { return x.keys > y.keys; });
  w.items = int32_t(items.size());
  w.decode = int32_t(decode.size() / 4);
  w.combine = int32_t(combine.size() / 4);
  work.clear();
  work.reserve(w.ints());
  for (const Item& it : items) work.insert(work.end(), {it.seq, it.tile});
  work.insert(work.end(), decode.begin(), decode.end());
  work.insert(work.end(), combine.begin(), combine.end());
  return w;
}

bool attention_simple(const AttentionArgs& a) {
  const bool aligned = a.qkv_stride % 8 == 0 && a.kv_stride % 8 == 0 && aligned16(a.qkv) &&
                       aligned16(a.k_cache) && aligned16(a.v_cache) && a.out_stride % 2 == 0 &&
                       (reinterpret_cast<uintptr_t>(a.out) & 3) == 0;
  return !(aligned && (a.head_dim == 64 || a.head_dim == 128 || a.head_dim == 256));
}

void launch_attention(const AttentionArgs& args, cudaStream_t stream) {
  if (args.num_tokens == 0) return;
  AttentionArgs a = args;
  a.block_size_log2 = -1;
  for (int b = 0; b < 31; ++b)
    if (a.block_size == (1 << b)) a.block_size_log2 = b;
  if (a.num_kv_heads <= 0 || a.num_heads % a.num_kv_heads != 0)
    throw EngineError(ErrorCode::unsupported, "cuda attention: num_heads must be a multiple of num_kv_heads");
  if (a.block_size <= 0) throw EngineError(ErrorCode::internal, "cuda attention: block_size must be positive");
  if (a.window < 0 || !(a.softcap >= 0.0f))
    throw EngineError(ErrorCode::internal, "cuda attention: window and softcap must not be negative");
  if (a.head_dim <= 0 || a.head_dim > kAttnMaxHeadDim)
    throw EngineError(ErrorCode::unsupported, "cuda attention: head_dim " + std::to_string(a.head_dim) +
                                                  " (at most " + std::to_string(kAttnMaxHeadDim) + ")");
  if (!attention_simple(a)) {
    if (a.num_work > 0) {
      switch (a.head_dim) {
        case 64: launch_hd<64, 64>(a, stream); break;
        case 128: launch_hd<128, 64>(a, stream); break;
        default: launch_hd<256, 32>(a, stream); break;
      }
    }
    if (a.num_decode_work > 0) {
      if (a.num_combine_work > 0 && a.partials == nullptr)
        throw EngineError(ErrorCode::internal, "cuda attention: split decode without partial memory");
      if (!launch_attention_decode(a, stream))
        throw EngineError(ErrorCode::internal, "cuda attention: no split decode kernel for head_dim " +
                                                   std::to_string(a.head_dim) + " with " +
                                                   std::to_string(a.num_heads / a.num_kv_heads) +
                                                   " q heads per KV head");
    }
    return;
  }
  // Other head sizes (tiny test models, head_dim 36...): the simple kernel.
  dim3 grid(unsigned(a.num_tokens), unsigned(a.num_heads));
  attention_simple_kernel<<<grid, kSimpleThreads, 0, stream>>>(a);
  BG_CUDA_CHECK_LAUNCH("attention_simple");
}

}  // namespace cuda
}  // namespace bg
