// Decode attention, split-K over the paged cache (flash-decoding), for sequences
// whose step is one query token; the default mode's decode path (attention.cu
// launches it, cuda_kernels.h says when).
//
// Work item = (sequence, partition of its keys) x KV head. A partition is a range
// of part_keys absolute key indices (part_keys is a multiple of 64 fixed by the
// row's own context length and the head shape, attention_work_build); keys before
// the window and past the context are masked. The G q heads of the KV head are the
// rows of one 16-row mma tile, so K and V are read once per KV head (Gemma-2B MQA:
// 8 rows). Each stage of TILE keys is staged by cp.async in a STAGES-deep ring
// (16-byte copies, block-table reads hoisted ahead of them, every thread loading);
// warp w computes keys [16w, 16w + 16) of each stage with its own online softmax,
// so the warps split the keys rather than idle. At the end the warps' states are
// merged in shared memory in warp order; a sequence with one partition writes its
// output there, one with several writes f32 partials (m, l, o) that
// attention_combine_kernel merges in partition order.
//
// Numerics as in attention_kernel (S in f32, base-2 online softmax, P rounded to
// bf16 for P*V, f32 accumulation); the merges are in f32. Determinism: the
// partitioning, the stage walk and both merge orders depend only on the sequence's
// own context length, the window and the head shape: a row's output is the same
// whatever else is in the batch.
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_kernels.h"

namespace bg {
namespace cuda {
namespace {

template <int HD, int TILE, int STAGES>
struct DecodeShape {
  static constexpr int kThreads = 128;
  static constexpr int kStride = HD + 8;  // +16 B per row: conflict-free ldmatrix
  static constexpr int kChunks = HD / 8;  // 16-byte chunks per row
  static constexpr int kWarps = TILE / 16;  // warps that compute (16 keys each per stage)
  static constexpr int kStageElems = 2 * TILE * kStride;  // K then V
  static constexpr size_t kSmem = (size_t(16) * kStride + size_t(STAGES) * kStageElems) * sizeof(bf16);
  static constexpr int kLoads = TILE * kChunks / kThreads;  // 16-byte chunks per thread per K (or V) tile
  static_assert(TILE * kChunks % kThreads == 0, "tile chunks must divide among the threads");
  static_assert(kWarps >= 1 && kWarps <= 4, "one to four computing warps");
  // The warps' merge area reuses the stage ring once the walk is done.
  static_assert(size_t(kWarps) * 16 * (HD + 2) * sizeof(float) <= size_t(STAGES) * kStageElems * sizeof(bf16),
                "merge area must fit in the stage ring");
};

template <int HD, int TILE, int STAGES>
__global__ void __launch_bounds__(128) attention_decode_kernel(AttentionArgs a, float scale_log2) {
  using S = DecodeShape<HD, TILE, STAGES>;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sq = reinterpret_cast<bf16*>(smem);
  bf16* ring = sq + 16 * S::kStride;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int* item = a.decode_work + 4 * blockIdx.x;
  const int seq = item[0], part = item[1], part_keys = item[2], slot = item[3];  // slot < 0: one partition
  const int kvh = blockIdx.y;
  const int G = a.num_heads / a.num_kv_heads;
  const int q0 = a.cu_seq_q[seq];
  const int ctx = a.context_lens[seq];
  const int lo = a.window > 0 ? max(0, ctx - a.window) : 0;  // the query sits at ctx - 1
  const int k_begin = max(part * part_keys, lo), k_end = min((part + 1) * part_keys, ctx);
  const int H = a.num_heads;
  float* partials = a.partials + (slot >= 0 ? int64_t(slot + part) * H * (HD + 2) : 0);

  if (k_begin >= k_end) {  // a partition wholly before the window (only when there are several)
    if (slot >= 0)
      for (int r = tid; r < G; r += S::kThreads) partials[(kvh * G + r) * (HD + 2)] = -INFINITY;
    return;
  }

  const bf16* qkv = static_cast<const bf16*>(a.qkv);
  const bf16* kc = static_cast<const bf16*>(a.k_cache);
  const bf16* vc = static_cast<const bf16*>(a.v_cache);
  const int* btab = a.block_tables + int64_t(seq) * a.max_blocks_per_seq;

  // Q: rows [0, G) are the group's heads, the rest zero.
  for (int c = tid; c < 16 * S::kChunks; c += S::kThreads) {
    const int r = c / S::kChunks, d = (c % S::kChunks) * 8;
    const bool ok = r < G;
    cp_async16(sq + r * S::kStride + d, ok ? qkv + int64_t(q0) * a.qkv_stride + (kvh * G + r) * HD + d : qkv, ok);
  }

  const int bs_shift = a.block_size_log2;
  // Stage t: keys [t * TILE, (t + 1) * TILE) into ring slot `buf`, zero outside [k_begin, k_end).
  auto load_stage = [&](int buf, int t) {
    bf16* dk = ring + buf * S::kStageElems;
    bf16* dv = dk + TILE * S::kStride;
    int64_t off[S::kLoads];
#pragma unroll
    for (int i = 0; i < S::kLoads; ++i) {
      const int c = tid + i * S::kThreads;
      const int key = t * TILE + c / S::kChunks;
      int blk = 0, in = 0;
      if (key >= k_begin && key < k_end) {
        if (bs_shift >= 0) {
          blk = btab[key >> bs_shift];
          in = key & (a.block_size - 1);
        } else {
          blk = btab[key / a.block_size];
          in = key % a.block_size;
        }
      }
      off[i] = (int64_t(blk) * a.block_size + in) * a.kv_stride + kvh * HD + (c % S::kChunks) * 8;
    }
#pragma unroll
    for (int i = 0; i < S::kLoads; ++i) {
      const int c = tid + i * S::kThreads;
      const int kk = c / S::kChunks, d = (c % S::kChunks) * 8;
      const int key = t * TILE + kk;
      const bool ok = key >= k_begin && key < k_end;
      cp_async16(dk + kk * S::kStride + d, ok ? kc + off[i] : kc, ok);
      cp_async16(dv + kk * S::kStride + d, ok ? vc + off[i] : vc, ok);
    }
  };

  const int t0 = k_begin / TILE, n = (k_end - 1) / TILE + 1 - t0;
  // Prologue: stages 0 .. STAGES-2 in flight (Q rides with the first group).
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < n) load_stage(s, t0 + s);
    cp_async_commit();
  }

  const int g = lane >> 2, t4 = lane & 3;
  const bool capped = a.softcap > 0.0f;
  const float cap_in = capped ? a.scale / a.softcap : 0.0f;
  const float cap_out = a.softcap * 1.4426950408889634f;
  const bool computes = warp < S::kWarps;  // warp-uniform

  float o[HD / 8][4];
#pragma unroll
  for (int d = 0; d < HD / 8; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

  for (int i = 0; i < n; ++i) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();  // stage i landed for every thread; every warp is done with stage i - 1
    if (i + STAGES - 1 < n) load_stage((i + STAGES - 1) % STAGES, t0 + i + STAGES - 1);
    cp_async_commit();
    if (!computes) continue;
    const bf16* sk = ring + (i % STAGES) * S::kStageElems;
    const bf16* sv = sk + TILE * S::kStride;
    const int key0 = (t0 + i) * TILE + warp * 16;  // this warp's 16 keys

    float s[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
#pragma unroll
    for (int kd = 0; kd < HD / 16; ++kd) {
      uint32_t qa[4], kb[4];
      ldmatrix_x4(qa, sq + (lane & 15) * S::kStride + kd * 16 + (lane >> 4) * 8);
      ldmatrix_x4(kb, sk + (warp * 16 + (lane & 7) + (lane >> 4) * 8) * S::kStride + kd * 16 + ((lane >> 3) & 1) * 8);
      mma_bf16_16816(s[0], qa, kb[0], kb[1]);
      mma_bf16_16816(s[1], qa, kb[2], kb[3]);
    }
    // Both rows of a thread are the same query position: the mask is per key.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int nb = 0; nb < 2; ++nb) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int key = key0 + nb * 8 + 2 * t4 + e;
          const float raw = s[nb][2 * r + e];
          const float v = key >= k_begin && key < k_end
                              ? (capped ? tanhf(raw * cap_in) * cap_out : raw * scale_log2)
                              : -INFINITY;
          s[nb][2 * r + e] = v;
          mx = fmaxf(mx, v);
        }
      }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m[r], mx);
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;
      const float alpha = exp2f(m[r] - m_use);
      m[r] = m_new;
      float rs = 0.0f;
#pragma unroll
      for (int nb = 0; nb < 2; ++nb) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float p = exp2f(s[nb][2 * r + e] - m_use);
          s[nb][2 * r + e] = p;
          rs += p;
        }
      }
      l[r] = l[r] * alpha + rs;
#pragma unroll
      for (int d = 0; d < HD / 8; ++d) {
        o[d][2 * r] *= alpha;
        o[d][2 * r + 1] *= alpha;
      }
    }
    uint32_t pa[4];
    pa[0] = pack_bf16x2(s[0][0], s[0][1]);
    pa[1] = pack_bf16x2(s[0][2], s[0][3]);
    pa[2] = pack_bf16x2(s[1][0], s[1][1]);
    pa[3] = pack_bf16x2(s[1][2], s[1][3]);
#pragma unroll
    for (int d2 = 0; d2 < HD / 16; ++d2) {
      uint32_t vb[4];
      ldmatrix_x4_trans(vb, sv + (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * S::kStride + d2 * 16 +
                                (lane >> 4) * 8);
      mma_bf16_16816(o[2 * d2], pa, vb[0], vb[1]);
      mma_bf16_16816(o[2 * d2 + 1], pa, vb[2], vb[3]);
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // the ring is free: it becomes the merge area

  // Each computing warp's state: [warp][row][m, l, o[0..HD)] in f32.
  float* mw = reinterpret_cast<float*>(ring);
  if (computes) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float lt = l[r];
      lt += __shfl_xor_sync(0xffffffffu, lt, 1);
      lt += __shfl_xor_sync(0xffffffffu, lt, 2);
      float* row = mw + (warp * 16 + g + 8 * r) * (HD + 2);
      if (t4 == 0) {
        row[0] = m[r];
        row[1] = lt;
      }
#pragma unroll
      for (int d = 0; d < HD / 8; ++d) {
        row[2 + d * 8 + 2 * t4] = o[d][2 * r];
        row[2 + d * 8 + 2 * t4 + 1] = o[d][2 * r + 1];
      }
    }
  }
  __syncthreads();

  // Merge the warps in order. Some warp saw a key of [k_begin, k_end), so M is finite.
  bf16* out = static_cast<bf16*>(a.out);
  for (int c = tid; c < G * HD; c += S::kThreads) {
    const int r = c / HD, d = c % HD;
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < S::kWarps; ++w) M = fmaxf(M, mw[(w * 16 + r) * (HD + 2)]);
    float L = 0.0f, O = 0.0f;
#pragma unroll
    for (int w = 0; w < S::kWarps; ++w) {
      const float* row = mw + (w * 16 + r) * (HD + 2);
      const float f = exp2f(row[0] - M);  // 0 for a warp that saw no key (m = -inf)
      L += row[1] * f;
      O += row[2 + d] * f;
    }
    const int h = kvh * G + r;
    if (slot < 0) {
      out[int64_t(q0) * a.out_stride + h * HD + d] = __float2bfloat16_rn(O * (1.0f / L));
    } else {
      float* p = partials + h * (HD + 2);
      p[2 + d] = O;
      if (d == 0) {
        p[0] = M;
        p[1] = L;
      }
    }
  }
}

// One block per (sequence with several partitions, q head): the partials merged in
// partition order, skipping partitions that saw no key.
__global__ void __launch_bounds__(128) attention_combine_kernel(AttentionArgs a) {
  const int* item = a.combine_work + 4 * blockIdx.x;
  const int seq = item[0], nparts = item[1], slot0 = item[2];
  const int h = blockIdx.y, HD = a.head_dim, H = a.num_heads;
  const int q0 = a.cu_seq_q[seq];
  bf16* out = static_cast<bf16*>(a.out) + int64_t(q0) * a.out_stride + h * HD;
  for (int d = threadIdx.x; d < HD; d += blockDim.x) {
    float M = -INFINITY, L = 0.0f, O = 0.0f;
    for (int k = 0; k < nparts; ++k) {
      const float* p = a.partials + (int64_t(slot0 + k) * H + h) * (HD + 2);
      const float mk = p[0];
      if (mk == -INFINITY) continue;
      const float mn = fmaxf(M, mk);
      const float fa = exp2f(M - mn), fb = exp2f(mk - mn);  // M = -inf the first time: fa = 0
      L = L * fa + p[1] * fb;
      O = O * fa + p[2 + d] * fb;
      M = mn;
    }
    out[d] = __float2bfloat16_rn(O * (1.0f / L));
  }
}

int max_smem_optin() {
  int dev = 0, v = 0;
  BG_CUDA_CHECK(cudaGetDevice(&dev));
  BG_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  return v;
}

template <int HD, int TILE, int STAGES>
bool launch_decode_variant(const AttentionArgs& a, cudaStream_t stream) {
  using S = DecodeShape<HD, TILE, STAGES>;
  if (size_t(max_smem_optin()) < S::kSmem) return false;
  auto kernel = attention_decode_kernel<HD, TILE, STAGES>;
  BG_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(S::kSmem)));
  dim3 grid(unsigned(a.num_decode_work), unsigned(a.num_kv_heads));
  kernel<<<grid, S::kThreads, S::kSmem, stream>>>(a, a.scale * 1.4426950408889634f);
  BG_CUDA_CHECK_LAUNCH("attention_decode");
  return true;
}

}  // namespace

// Shared memory per block: hd64 58 KB, hd128 109 KB, hd256 110 KB (two blocks per
// SM on sm_80/sm_90; sm_89's 99 KB opt-in limit takes the 2-stage ring instead).
bool launch_attention_decode(const AttentionArgs& a, cudaStream_t stream) {
  if (a.num_heads > 16 * a.num_kv_heads) return false;  // the group must fit the 16-row tile
  bool ok = false;
  switch (a.head_dim) {
    case 64: ok = launch_decode_variant<64, 64, 3>(a, stream) || launch_decode_variant<64, 64, 2>(a, stream); break;
    case 128: ok = launch_decode_variant<128, 64, 3>(a, stream) || launch_decode_variant<128, 32, 2>(a, stream); break;
    case 256: ok = launch_decode_variant<256, 32, 3>(a, stream) || launch_decode_variant<256, 16, 2>(a, stream); break;
    default: break;
  }
  if (!ok) return false;
  if (a.num_combine_work > 0) {
    dim3 grid(unsigned(a.num_combine_work), unsigned(a.num_heads));
    attention_combine_kernel<<<grid, 128, 0, stream>>>(a);
    BG_CUDA_CHECK_LAUNCH("attention_combine");
  }
  return true;
}

}  // namespace cuda
}  // namespace bg
