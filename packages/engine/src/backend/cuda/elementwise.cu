// Row-wise and element-wise kernels: embedding lookup, RMSNorm (with the fused
// residual add), per-head RMSNorm (QK-norm), rotary embedding, KV-cache write, gated
// activation, row gather, soft-capping.
// Memory-bound; math in f32, one rounding to the output dtype. A row's result is
// computed by the same threads in the same order whatever the batch holds.
#include <cmath>
#include <string>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_kernels.h"

namespace bg {
namespace cuda {
namespace {

[[noreturn]] void bad_arg(const std::string& msg) {
  throw EngineError(ErrorCode::internal, "cuda backend: " + msg);
}

// Calls f(T{}) with T the C++ type of a bf16 or f32 tensor.
template <typename F>
void with_type(DType t, const char* what, F&& f) {
  switch (t) {
    case DType::bf16: f(bf16{}); return;
    case DType::f32: f(float{}); return;
    default: bad_arg(std::string(what) + " must be bf16 or f32");
  }
}

// --- embed -------------------------------------------------------------------
template <typename TT, typename TO>
__global__ void embed_kernel(const TT* __restrict__ table, int64_t ts, const int32_t* __restrict__ ids,
                             float scale, TO* __restrict__ out, int64_t os, int cols) {
  const int t = blockIdx.x;
  const TT* src = table + int64_t(ids[t]) * ts;
  TO* dst = out + int64_t(t) * os;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) dst[c] = from_f32<TO>(to_f32(src[c]) * scale);
}

// --- rms norm ------------------------------------------------------------------
// One block per row. Pass 1 (optionally) adds x into the residual and sums squares;
// pass 2 reads back the values this same thread wrote, so out may alias x.
template <typename TR, typename TX, typename TW, typename TO>
__global__ void rms_norm_kernel(TR* residual, int64_t rs, const TX* x, int64_t xs,
                                const TW* __restrict__ w, float eps, float offset, TO* out,
                                int64_t os, int cols) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const TX* xr = x + row * xs;
  TR* rr = residual ? residual + row * rs : nullptr;
  float ss = 0.0f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    float v;
    if (rr) {
      TR sum = from_f32<TR>(to_f32(rr[c]) + to_f32(xr[c]));
      rr[c] = sum;
      v = to_f32(sum);
    } else {
      v = to_f32(xr[c]);
    }
    ss += v * v;
  }
  ss = block_sum(ss, scratch);
  const float r = rsqrtf(ss / float(cols) + eps);
  TO* orow = out + row * os;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    float v = rr ? to_f32(rr[c]) : to_f32(xr[c]);
    orow[c] = from_f32<TO>((v * r) * (to_f32(w[c]) + offset));
  }
}

// Eight consecutive elements through 16-byte accesses (one for bf16, two for f32);
// the pointer is 16-byte aligned.
__device__ __forceinline__ void load8(const bf16* p, float v[8]) {
  const uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
  unpack_bf16x8(u, v);
}
__device__ __forceinline__ void load8(const float* p, float v[8]) {
  const float4 a = __ldg(reinterpret_cast<const float4*>(p)), b = __ldg(reinterpret_cast<const float4*>(p) + 1);
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}
// For rows the kernel also writes (the residual, x when out is x): plain loads.
__device__ __forceinline__ void load8_rw(const bf16* p, float v[8]) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  unpack_bf16x8(u, v);
}
__device__ __forceinline__ void load8_rw(const float* p, float v[8]) {
  const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}
__device__ __forceinline__ void store8(bf16* p, const float v[8]) {
  *reinterpret_cast<uint4*>(p) =
      make_uint4(pack_bf16x2(v[0], v[1]), pack_bf16x2(v[2], v[3]), pack_bf16x2(v[4], v[5]), pack_bf16x2(v[6], v[7]));
}
__device__ __forceinline__ void store8(float* p, const float v[8]) {
  reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
  reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
}

// rms_norm_kernel with each thread holding 8 consecutive elements of the row in
// registers from the loads to the store: one read of x, the residual and w, one
// write of the residual and out, all 16-byte accesses. cols % 8 == 0, cols <= 8 *
// 1024, blockDim = cols / 8 rounded up to a warp, every row 16-byte aligned.
template <typename TR, typename TX, typename TW, typename TO>
__global__ void rms_norm_vec8_kernel(TR* residual, int64_t rs, const TX* x, int64_t xs,
                                     const TW* __restrict__ w, float eps, float offset, TO* out,
                                     int64_t os, int cols) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const int c0 = threadIdx.x * 8;
  const bool on = c0 < cols;
  float v[8], wv[8];
  float ss = 0.0f;
  if (on) {
    load8(w + c0, wv);
    load8_rw(x + row * xs + c0, v);  // out may be x: plain loads
    if (residual) {
      TR* rr = residual + row * rs + c0;
      float r[8];
      load8_rw(rr, r);
#pragma unroll
      for (int k = 0; k < 8; ++k) v[k] = to_f32(from_f32<TR>(r[k] + v[k]));  // rounded as stored
      store8(rr, v);
    }
#pragma unroll
    for (int k = 0; k < 8; ++k) ss += v[k] * v[k];
  }
  ss = block_sum(ss, scratch);
  const float rn = rsqrtf(ss / float(cols) + eps);
  if (on) {
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = (v[k] * rn) * (wv[k] + offset);
    store8(out + row * os + c0, v);
  }
}

// --- per-head rms norm (QK-norm) -------------------------------------------------------
// One block per token, one warp per head at a time; each lane re-reads only the
// elements it wrote, so the norm is in place.
template <typename T, typename TW>
__global__ void head_rms_norm_kernel(T* qkv, int64_t stride, int nq, int nk, int hd, const TW* __restrict__ qw,
                                     const TW* __restrict__ kw, float eps, float offset) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  T* row = qkv + int64_t(blockIdx.x) * stride;
  for (int h = warp; h < nq + nk; h += warps) {
    T* x = row + int64_t(h) * hd;
    const TW* w = h < nq ? qw : kw;
    float ss = 0.0f;
    for (int d = lane; d < hd; d += 32) {
      const float v = to_f32(x[d]);
      ss += v * v;
    }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    const float r = rsqrtf(ss / float(hd) + eps);
    for (int d = lane; d < hd; d += 32) x[d] = from_f32<T>((to_f32(x[d]) * r) * (to_f32(w[d]) + offset));
  }
}

// --- soft-capping ----------------------------------------------------------------------
__global__ void softcap_kernel(float* x, int64_t stride, int cols, float cap) {
  float* row = x + int64_t(blockIdx.y) * stride;
  for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x)
    row[c] = tanhf(row[c] / cap) * cap;
}

// --- rope --------------------------------------------------------------------------
template <typename T>
__global__ void rope_kernel(T* qkv, int64_t stride, const int32_t* __restrict__ positions,
                            RopeArgs a) {
  const int t = blockIdx.x;
  const float pos = float(positions[t]);
  const int half = a.rotary_dim / 2;
  const int heads = a.num_q_heads + a.num_k_heads;  // k heads follow the q heads
  T* row = qkv + int64_t(t) * stride;
  for (int idx = threadIdx.x; idx < heads * half; idx += blockDim.x) {
    const int h = idx / half, i = idx - h * half;
    // Transformers: freqs = inv_freq (f32) * position (f32); cos/sin in f32.
    const float ang = pos * a.inv_freq[i];
    float s, c;
    sincosf(ang, &s, &c);
    c *= a.attention_scaling;
    s *= a.attention_scaling;
    T* x = row + h * a.head_dim;
    const float x1 = to_f32(x[i]), x2 = to_f32(x[i + half]);
    x[i] = from_f32<T>(x1 * c - x2 * s);
    x[i + half] = from_f32<T>(x2 * c + x1 * s);
  }
}

// --- kv write ------------------------------------------------------------------------
template <typename TQ, typename TC>
__global__ void kv_write_kernel(const TQ* __restrict__ qkv, int64_t qs, const int32_t* __restrict__ slots,
                                int q_width, int kv_width, TC* __restrict__ k, TC* __restrict__ v,
                                int64_t ks, int64_t vs) {
  const int t = blockIdx.x;
  const int64_t slot = slots[t];
  if (slot < 0) return;
  const TQ* src = qkv + int64_t(t) * qs + q_width;
  TC* kd = k + slot * ks;
  TC* vd = v + slot * vs;
  for (int c = threadIdx.x; c < kv_width; c += blockDim.x) {
    kd[c] = from_f32<TC>(to_f32(src[c]));
    vd[c] = from_f32<TC>(to_f32(src[kv_width + c]));
  }
}

// 16-byte copies when every row start is 16-byte aligned (the common bf16 case).
__global__ void kv_write_vec_kernel(const uint4* __restrict__ qkv, int64_t qs16, const int32_t* __restrict__ slots,
                                    int q16, int kv16, uint4* __restrict__ k, uint4* __restrict__ v,
                                    int64_t ks16, int64_t vs16) {
  const int t = blockIdx.x;
  const int64_t slot = slots[t];
  if (slot < 0) return;
  const uint4* src = qkv + int64_t(t) * qs16 + q16;
  for (int c = threadIdx.x; c < kv16; c += blockDim.x) {
    k[slot * ks16 + c] = src[c];
    v[slot * vs16 + c] = src[kv16 + c];
  }
}

// --- gated activation ---------------------------------------------------------------
__device__ __forceinline__ float act_apply(float g, int act) {
  if (act == 0) {
    // PyTorch's gelu(approximate='tanh').
    const float k_beta = 0.7978845608028654f, k_kappa = 0.044715f;
    return 0.5f * g * (1.0f + tanhf(k_beta * (g + k_kappa * g * g * g)));
  }
  return g / (1.0f + expf(-g));
}

template <typename TI, typename TO>
__global__ void gated_kernel(const TI* __restrict__ gu, int64_t gs, int inter, int act, TO* __restrict__ out,
                             int64_t os) {
  const int64_t t = blockIdx.y;
  const TI* g = gu + t * gs;
  TO* o = out + t * os;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < inter; i += gridDim.x * blockDim.x) {
    o[i] = from_f32<TO>(act_apply(to_f32(g[i]), act) * to_f32(g[inter + i]));
  }
}

// bf16, 8 elements per thread.
__global__ void gated_vec_kernel(const uint4* __restrict__ gu, int64_t gs8, int inter8, int act,
                                 uint4* __restrict__ out, int64_t os8) {
  const int64_t t = blockIdx.y;
  const uint4* g = gu + t * gs8;
  uint4* o = out + t * os8;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < inter8; i += gridDim.x * blockDim.x) {
    uint4 gv = g[i], uv = g[inter8 + i], ov;
    const bf16* ge = reinterpret_cast<const bf16*>(&gv);
    const bf16* ue = reinterpret_cast<const bf16*>(&uv);
    bf16* oe = reinterpret_cast<bf16*>(&ov);
#pragma unroll
    for (int e = 0; e < 8; ++e) oe[e] = __float2bfloat16_rn(act_apply(__bfloat162float(ge[e]), act) * __bfloat162float(ue[e]));
    o[i] = ov;
  }
}

// --- gather / broadcast ---------------------------------------------------------------
template <typename TI, typename TO>
__global__ void gather_kernel(const TI* __restrict__ x, int64_t xs, const int32_t* __restrict__ rows, TO* __restrict__ out,
                              int64_t os, int cols) {
  const int r = blockIdx.x;
  const TI* src = x + int64_t(rows[r]) * xs;
  TO* dst = out + int64_t(r) * os;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) dst[c] = from_f32<TO>(to_f32(src[c]));
}

template <typename TB, typename TO>
__global__ void broadcast_kernel(const TB* __restrict__ bias, TO* __restrict__ out, int64_t os, int cols) {
  TO* dst = out + int64_t(blockIdx.x) * os;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) dst[c] = from_f32<TO>(to_f32(bias[c]));
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

int row_threads(int64_t cols) { return cols >= 4096 ? 1024 : cols >= 1024 ? 512 : 256; }

// Every row starts on a 16-byte boundary: the base and the row stride in bytes.
bool aligned16(const Tensor& t) {
  return reinterpret_cast<uintptr_t>(t.data) % 16 == 0 && (t.stride * int64_t(dtype_size(t.dtype))) % 16 == 0;
}

}  // namespace

void launch_embed(const Tensor& table, const int32_t* ids, int32_t T, float scale, Tensor& out,
                  cudaStream_t stream) {
  if (T == 0) return;
  if (out.cols != table.cols) bad_arg("embed: table and out widths differ");
  with_type(table.dtype, "embed table", [&](auto tt) {
    with_type(out.dtype, "embed out", [&](auto to) {
      using TT = decltype(tt);
      using TO = decltype(to);
      embed_kernel<TT, TO><<<T, row_threads(out.cols), 0, stream>>>(
          table.ptr<TT>(), table.stride, ids, scale, out.ptr<TO>(), out.stride, int(out.cols));
    });
  });
  BG_CUDA_CHECK_LAUNCH("embed");
}

void launch_rms_norm(Tensor* residual, const Tensor& x, const Tensor& w, float eps, float offset,
                     Tensor& out, cudaStream_t stream, int variant) {
  if (x.rows == 0) return;
  if (w.cols != x.cols || out.cols != x.cols || out.rows != x.rows)
    bad_arg("rms_norm: shapes of x, w and out disagree");
  if (residual && (residual->cols != x.cols || residual->rows != x.rows))
    bad_arg("add_rms_norm: residual shape differs from x");
  const DType rt = residual ? residual->dtype : x.dtype;
  with_type(rt, "residual", [&](auto tr) {
    with_type(x.dtype, "rms_norm x", [&](auto tx) {
      with_type(w.dtype, "rms_norm weight", [&](auto tw) {
        with_type(out.dtype, "rms_norm out", [&](auto to) {
          using TR = decltype(tr);
          using TX = decltype(tx);
          using TW = decltype(tw);
          using TO = decltype(to);
          // The kernel is chosen by the row width and alignment alone (never by the
          // row count), so a row's result does not depend on its batch.
          const bool vec8 = variant != 1 && x.cols % 8 == 0 && x.cols <= 8 * 1024 && aligned16(x) &&
                            aligned16(w) && aligned16(out) && (!residual || aligned16(*residual));
          if (vec8) {
            const unsigned threads = unsigned((x.cols / 8 + 31) / 32 * 32);
            rms_norm_vec8_kernel<TR, TX, TW, TO><<<unsigned(x.rows), threads, 0, stream>>>(
                residual ? residual->ptr<TR>() : nullptr, residual ? residual->stride : 0,
                x.ptr<TX>(), x.stride, w.ptr<TW>(), eps, offset, out.ptr<TO>(), out.stride,
                int(x.cols));
          } else {
            rms_norm_kernel<TR, TX, TW, TO><<<unsigned(x.rows), row_threads(x.cols), 0, stream>>>(
                residual ? residual->ptr<TR>() : nullptr, residual ? residual->stride : 0,
                x.ptr<TX>(), x.stride, w.ptr<TW>(), eps, offset, out.ptr<TO>(), out.stride,
                int(x.cols));
          }
        });
      });
    });
  });
  BG_CUDA_CHECK_LAUNCH("rms_norm");
}

void launch_rope(Tensor& qkv, const int32_t* positions, int32_t T, const RopeArgs& args,
                 cudaStream_t stream) {
  if (T == 0) return;
  if (args.rotary_dim <= 0 || args.rotary_dim > args.head_dim || args.rotary_dim % 2 != 0 ||
      args.rotary_dim / 2 > 256)
    bad_arg("rope: rotary_dim must be even, <= head_dim and <= 512");
  const int work = (args.num_q_heads + args.num_k_heads) * (args.rotary_dim / 2);
  with_type(qkv.dtype, "rope qkv", [&](auto tq) {
    using TQ = decltype(tq);
    rope_kernel<TQ><<<T, work >= 1024 ? 1024 : 256, 0, stream>>>(qkv.ptr<TQ>(), qkv.stride,
                                                                positions, args);
  });
  BG_CUDA_CHECK_LAUNCH("rope");
}

void launch_head_rms_norm(Tensor& qkv, int32_t nq, int32_t nk, int32_t head_dim, const Tensor& q_w,
                          const Tensor& k_w, float eps, float offset, cudaStream_t stream) {
  if (qkv.rows == 0) return;
  if (q_w.cols != head_dim || k_w.cols != head_dim || q_w.dtype != k_w.dtype)
    bad_arg("head_rms_norm: q_norm and k_norm weights must be [1, head_dim] of one dtype");
  if (int64_t(nq + nk) * head_dim > qkv.cols) bad_arg("head_rms_norm: heads wider than the qkv rows");
  with_type(qkv.dtype, "head_rms_norm qkv", [&](auto tq) {
    with_type(q_w.dtype, "q_norm weight", [&](auto tw) {
      using TQ = decltype(tq);
      using TW = decltype(tw);
      head_rms_norm_kernel<TQ, TW><<<unsigned(qkv.rows), 256, 0, stream>>>(
          qkv.ptr<TQ>(), qkv.stride, nq, nk, head_dim, q_w.ptr<TW>(), k_w.ptr<TW>(), eps, offset);
    });
  });
  BG_CUDA_CHECK_LAUNCH("head_rms_norm");
}

void launch_softcap(Tensor& x, float cap, cudaStream_t stream) {
  if (x.rows == 0 || x.cols == 0) return;
  if (x.dtype != DType::f32) bad_arg("softcap: logits must be f32");
  if (!(cap > 0.0f)) bad_arg("softcap: the cap must be positive");
  if (x.rows > 65535) bad_arg("softcap: more than 65535 rows");
  dim3 grid(unsigned(std::min<int64_t>(ceil_div(x.cols, 256), 64)), unsigned(x.rows));
  softcap_kernel<<<grid, 256, 0, stream>>>(x.ptr<float>(), x.stride, int(x.cols), cap);
  BG_CUDA_CHECK_LAUNCH("softcap");
}

void launch_kv_write(const Tensor& qkv, const int32_t* slot_mapping, int32_t T,
                     const HeadLayout& heads, KvLayer& cache, cudaStream_t stream) {
  if (T == 0) return;
  const int qw = heads.q_width(), kvw = heads.kv_width();
  if (cache.k.cols != kvw || cache.v.cols != kvw) bad_arg("kv_write: cache width != kv_width");
  const size_t es = dtype_size(qkv.dtype);
  const bool vec = qkv.dtype == cache.k.dtype && cache.k.dtype == cache.v.dtype &&
                   (qw * es) % 16 == 0 && (kvw * es) % 16 == 0 && (qkv.stride * es) % 16 == 0 &&
                   (cache.k.stride * es) % 16 == 0 && (cache.v.stride * es) % 16 == 0 &&
                   aligned16(qkv.data) && aligned16(cache.k.data) && aligned16(cache.v.data);
  if (vec) {
    const int per = int(16 / es);
    kv_write_vec_kernel<<<T, 128, 0, stream>>>(
        static_cast<const uint4*>(qkv.data), qkv.stride / per, slot_mapping, qw / per, kvw / per,
        static_cast<uint4*>(cache.k.data), static_cast<uint4*>(cache.v.data),
        cache.k.stride / per, cache.v.stride / per);
  } else {
    with_type(qkv.dtype, "kv_write qkv", [&](auto tq) {
      with_type(cache.k.dtype, "kv cache", [&](auto tc) {
        using TQ = decltype(tq);
        using TC = decltype(tc);
        if (cache.v.dtype != cache.k.dtype) bad_arg("kv_write: k and v caches differ in dtype");
        kv_write_kernel<TQ, TC><<<T, 256, 0, stream>>>(qkv.ptr<TQ>(), qkv.stride, slot_mapping, qw,
                                                      kvw, cache.k.ptr<TC>(), cache.v.ptr<TC>(),
                                                      cache.k.stride, cache.v.stride);
      });
    });
  }
  BG_CUDA_CHECK_LAUNCH("kv_write");
}

void launch_gated_activation(const Tensor& gate_up, Activation act, Tensor& out,
                             cudaStream_t stream) {
  if (gate_up.rows == 0) return;
  const int64_t inter = out.cols;
  if (gate_up.cols != 2 * inter || out.rows != gate_up.rows)
    bad_arg("gated_activation: gate_up must be [T, 2I] and out [T, I]");
  if (gate_up.rows > 65535) bad_arg("gated_activation: more than 65535 rows");
  const int a = act == Activation::gelu_tanh ? 0 : 1;
  const bool vec = gate_up.dtype == DType::bf16 && out.dtype == DType::bf16 && inter % 8 == 0 &&
                   gate_up.stride % 8 == 0 && out.stride % 8 == 0 && aligned16(gate_up.data) &&
                   aligned16(out.data);
  const int64_t n = vec ? inter / 8 : inter;
  dim3 grid(unsigned(std::min<int64_t>(ceil_div(n, 256), 64)), unsigned(gate_up.rows));
  if (vec) {
    gated_vec_kernel<<<grid, 256, 0, stream>>>(static_cast<const uint4*>(gate_up.data),
                                               gate_up.stride / 8, int(inter / 8), a,
                                               static_cast<uint4*>(out.data), out.stride / 8);
  } else {
    with_type(gate_up.dtype, "gate_up", [&](auto ti) {
      with_type(out.dtype, "activation out", [&](auto to) {
        using TI = decltype(ti);
        using TO = decltype(to);
        gated_kernel<TI, TO><<<grid, 256, 0, stream>>>(gate_up.ptr<TI>(), gate_up.stride,
                                                       int(inter), a, out.ptr<TO>(), out.stride);
      });
    });
  }
  BG_CUDA_CHECK_LAUNCH("gated_activation");
}

void launch_gather_rows(const Tensor& x, const int32_t* rows, int32_t R, Tensor& out,
                        cudaStream_t stream) {
  if (R == 0) return;
  if (out.cols != x.cols) bad_arg("gather_rows: widths differ");
  with_type(x.dtype, "gather x", [&](auto ti) {
    with_type(out.dtype, "gather out", [&](auto to) {
      using TI = decltype(ti);
      using TO = decltype(to);
      gather_kernel<TI, TO><<<R, row_threads(x.cols), 0, stream>>>(x.ptr<TI>(), x.stride, rows,
                                                                   out.ptr<TO>(), out.stride,
                                                                   int(x.cols));
    });
  });
  BG_CUDA_CHECK_LAUNCH("gather_rows");
}

void launch_broadcast_rows(const Tensor& bias, Tensor& out, cudaStream_t stream) {
  if (out.rows == 0) return;
  if (bias.cols != out.cols) bad_arg("bias width differs from the output's");
  with_type(bias.dtype, "bias", [&](auto tb) {
    with_type(out.dtype, "linear out", [&](auto to) {
      using TB = decltype(tb);
      using TO = decltype(to);
      broadcast_kernel<TB, TO><<<unsigned(out.rows), row_threads(out.cols), 0, stream>>>(
          bias.ptr<TB>(), out.ptr<TO>(), out.stride, int(out.cols));
    });
  });
  BG_CUDA_CHECK_LAUNCH("broadcast_rows");
}

}  // namespace cuda
}  // namespace bg
