// Norms, rotary embedding, gated activation and paged attention on the CPU, f32
// throughout. Parallel over tokens (or token x head); each row's arithmetic is
// the same whatever else is in the batch.
#include <algorithm>
#include <cmath>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_simd.h"

namespace bg {
namespace cpu {
namespace {

BG_CPU_CLONES
void rms_norm_rows(float* x, int64_t xs, const float* add, int64_t as, const float* w, float eps,
                   float offset, float* out, int64_t os, int64_t t0, int64_t t1, int64_t H) {
  for (int64_t t = t0; t < t1; ++t) {
    float* r = x + t * xs;
    if (add) {
      const float* a = add + t * as;
      for (int64_t i = 0; i < H; ++i) r[i] = r[i] + a[i];
    }
    // transformers: x * rsqrt(mean(x^2) + eps), then * w (llama) or * (1 + w) (gemma).
    const float mean = dot8(r, r, H) / float(H);
    const float inv = 1.0f / std::sqrt(mean + eps);
    float* o = out + t * os;
    for (int64_t i = 0; i < H; ++i) o[i] = (r[i] * inv) * (w[i] + offset);
  }
}

BG_CPU_CLONES
void rope_rows(float* qkv, int64_t stride, const int32_t* positions, int64_t t0, int64_t t1,
               int32_t num_rot_heads, int32_t head_dim, const float* inv_freq, float scaling,
               float* cs) {
  const int32_t half = head_dim / 2;
  float* cosv = cs;
  float* sinv = cs + half;
  for (int64_t t = t0; t < t1; ++t) {
    // transformers: freqs = inv_freq * position (one f32 product), cos/sin in f32.
    const float p = float(positions[t]);
    for (int32_t i = 0; i < half; ++i) {
      const float angle = inv_freq[i] * p;
      cosv[i] = std::cos(angle) * scaling;
      sinv[i] = std::sin(angle) * scaling;
    }
    float* row = qkv + t * stride;
    for (int32_t h = 0; h < num_rot_heads; ++h) {
      float* x = row + int64_t(h) * head_dim;
      for (int32_t i = 0; i < half; ++i) {
        const float x0 = x[i], x1 = x[i + half];
        x[i] = x0 * cosv[i] - x1 * sinv[i];
        x[i + half] = x1 * cosv[i] + x0 * sinv[i];
      }
    }
  }
}

BG_CPU_CLONES
void gated_rows(const float* gu, int64_t gs, Act act, float* out, int64_t os, int64_t t0,
                int64_t t1, int64_t I) {
  // torch's gelu(approximate="tanh") and silu, in f32.
  const float beta = float(M_SQRT2 * M_2_SQRTPI * 0.5);
  const float kappa = 0.044715f;
  for (int64_t t = t0; t < t1; ++t) {
    const float* g = gu + t * gs;
    const float* u = g + I;
    float* o = out + t * os;
    if (act == Act::gelu_tanh) {
      for (int64_t i = 0; i < I; ++i) {
        const float x = g[i];
        const float inner = beta * (x + kappa * (x * x * x));
        o[i] = (0.5f * x * (1.0f + std::tanh(inner))) * u[i];
      }
    } else {
      for (int64_t i = 0; i < I; ++i) {
        const float x = g[i];
        o[i] = (x / (1.0f + std::exp(-x))) * u[i];
      }
    }
  }
}

// Calls f(first key, block, keys in it) for the keys [lo, hi) of a sequence, one
// run of consecutive slots at a time (key j is slot j % bs of block j / bs).
template <typename F>
BG_INLINE void for_key_runs(const int32_t* table, int32_t bs, int32_t lo, int32_t hi, F&& f) {
  for (int32_t j = lo; j < hi;) {
    const int32_t off = j % bs;
    const int32_t n = std::min(bs - off, hi - j);
    f(j, int64_t(table[j / bs]) * bs + off, n);
    j += n;
  }
}

// out[d] = sum over keys j in [lo, hi) (in order) of p[j - lo] * V_j[d] for d in
// [d0, d0 + 8 * G): G 8-lane accumulators stay in registers for the whole pass.
template <int G>
BG_INLINE void weighted_sum_lanes(const AttentionArgs& a, const int32_t* table, int32_t lo, int32_t hi,
                                  const float* p, int64_t v_col, int32_t d0, float* o) {
  v8f acc[G];
  for (int g = 0; g < G; ++g) acc[g] = splat8(0.0f);
  for_key_runs(table, a.block_size, lo, hi, [&](int32_t j, int64_t slot, int32_t n) {
    const float* vb = a.v_cache + slot * a.kv_stride + v_col + d0;
    for (int32_t i = 0; i < n; ++i) {
      const v8f pj = splat8(p[j - lo + i]);
      const float* v = vb + int64_t(i) * a.kv_stride;
      for (int g = 0; g < G; ++g) acc[g] += pj * load8(v + 8 * g);
    }
  });
  for (int g = 0; g < G; ++g) store8(o + d0 + 8 * g, acc[g]);
}

// Work items first, first + step, ... of token x head; scores holds max_context floats.
BG_CPU_CLONES
void attention_items(const AttentionArgs& a, int64_t first, int64_t step, float* scores) {
  const int32_t hd = a.head_dim;
  const int32_t bs = a.block_size;
  const int32_t group = a.num_heads / a.num_kv_heads;
  const int64_t items = int64_t(a.num_tokens) * a.num_heads;
  for (int64_t item = first; item < items; item += step) {
    const int32_t t = int32_t(item / a.num_heads);
    const int32_t h = int32_t(item % a.num_heads);
    // The sequence owning token t: the last s with cu_seq_q[s] <= t.
    const int32_t s = int32_t(std::upper_bound(a.cu_seq_q, a.cu_seq_q + a.num_seqs + 1, t) - a.cu_seq_q) - 1;
    const int32_t q_len = a.cu_seq_q[s + 1] - a.cu_seq_q[s];
    const int32_t pos = a.context_lens[s] - q_len + (t - a.cu_seq_q[s]);
    // Keys [lo, hi): the causal mask, cut to the window (transformers: kv > q - window).
    const int32_t hi = pos + 1;
    const int32_t lo = a.window > 0 ? std::max(0, pos - a.window + 1) : 0;
    const int64_t kv_col = int64_t(h / group) * hd;
    const float* q = a.qkv + int64_t(t) * a.qkv_stride + int64_t(h) * hd;
    const int32_t* table = a.block_tables + int64_t(s) * a.max_blocks;

    // Scores (transformers: q.k * scale, then / cap, tanh, * cap when soft-capped).
    float max_score = -INFINITY;
    for_key_runs(table, bs, lo, hi, [&](int32_t j, int64_t slot, int32_t n) {
      const float* kb = a.k_cache + slot * a.kv_stride + kv_col;
      for (int32_t i = 0; i < n; ++i) {
        float sc = dot8(q, kb + int64_t(i) * a.kv_stride, hd) * a.scale;
        if (a.softcap > 0) sc = std::tanh(sc / a.softcap) * a.softcap;
        scores[j - lo + i] = sc;
        max_score = std::max(max_score, sc);
      }
    });
    // Softmax in f32 with the max subtracted; scores become probabilities.
    const int32_t n_keys = hi - lo;
    float sum = 0.0f;
    for (int32_t j = 0; j < n_keys; ++j) {
      const float e = std::exp(scores[j] - max_score);
      scores[j] = e;
      sum += e;
    }
    const float inv_sum = 1.0f / sum;
    for (int32_t j = 0; j < n_keys; ++j) scores[j] = scores[j] * inv_sum;

    // Output: each element sums p_j * v_j[d] over j in order, 32 then 8 dims per pass.
    float* o = a.out + int64_t(t) * a.out_stride + int64_t(h) * hd;
    int32_t d0 = 0;
    for (; d0 + 32 <= hd; d0 += 32) weighted_sum_lanes<4>(a, table, lo, hi, scores, kv_col, d0, o);
    for (; d0 + 8 <= hd; d0 += 8) weighted_sum_lanes<1>(a, table, lo, hi, scores, kv_col, d0, o);
    for (; d0 < hd; ++d0) {
      float acc = 0.0f;
      for_key_runs(table, bs, lo, hi, [&](int32_t j, int64_t slot, int32_t n) {
        const float* vb = a.v_cache + slot * a.kv_stride + kv_col + d0;
        for (int32_t i = 0; i < n; ++i) acc += scores[j - lo + i] * vb[int64_t(i) * a.kv_stride];
      });
      o[d0] = acc;
    }
  }
}

BG_CPU_CLONES
void softcap_rows(float* x, int64_t stride, int64_t t0, int64_t t1, int64_t N, float cap) {
  // transformers: logits / cap, tanh, * cap, in f32.
  for (int64_t t = t0; t < t1; ++t) {
    float* r = x + t * stride;
    for (int64_t i = 0; i < N; ++i) r[i] = std::tanh(r[i] / cap) * cap;
  }
}

}  // namespace

void rms_norm_f32(ThreadPool& pool, float* x, int64_t xs, const float* add, int64_t as,
                  const float* w, float eps, float offset, float* out, int64_t os, int64_t T,
                  int64_t H) {
  pool.parallel_for(T, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, H)), [&](int, int64_t b, int64_t e) {
    rms_norm_rows(x, xs, add, as, w, eps, offset, out, os, b, e, H);
  });
}

void head_rms_norm_f32(ThreadPool& pool, float* qkv, int64_t stride, int64_t T, int32_t nq, int32_t nk,
                       int32_t head_dim, const float* q_w, const float* k_w, float eps, float offset) {
  const int64_t per_token = int64_t(nq + nk) * head_dim;
  pool.parallel_for(T, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, per_token)), [&](int, int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      // A token's heads are rows of head_dim floats: q heads, then k heads.
      float* q = qkv + t * stride;
      float* k = q + int64_t(nq) * head_dim;
      rms_norm_rows(q, head_dim, nullptr, 0, q_w, eps, offset, q, head_dim, 0, nq, head_dim);
      rms_norm_rows(k, head_dim, nullptr, 0, k_w, eps, offset, k, head_dim, 0, nk, head_dim);
    }
  });
}

void softcap_f32(ThreadPool& pool, float* x, int64_t stride, int64_t T, int64_t N, float cap) {
  pool.parallel_for(T, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, N)), [&](int, int64_t b, int64_t e) {
    softcap_rows(x, stride, b, e, N, cap);
  });
}

void rope_f32(ThreadPool& pool, float* qkv, int64_t stride, const int32_t* positions, int64_t T,
              int32_t num_rot_heads, int32_t head_dim, const float* inv_freq, float scaling,
              float* const* scratch) {
  const int64_t per_token = int64_t(num_rot_heads) * head_dim + head_dim * 8;
  pool.parallel_for(T, std::max<int64_t>(1, 16384 / per_token), [&](int chunk, int64_t b, int64_t e) {
    rope_rows(qkv, stride, positions, b, e, num_rot_heads, head_dim, inv_freq, scaling, scratch[chunk]);
  });
}

void gated_act_f32(ThreadPool& pool, const float* gu, int64_t gs, Act act, float* out, int64_t os,
                   int64_t T, int64_t I) {
  pool.parallel_for(T, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, I)), [&](int, int64_t b, int64_t e) {
    gated_rows(gu, gs, act, out, os, b, e, I);
  });
}

void attention_f32(ThreadPool& pool, const AttentionArgs& a, float* const* scratch) {
  const int64_t items = int64_t(a.num_tokens) * a.num_heads;
  // Items differ in cost (later tokens of a prefill see more keys), so chunk c takes
  // every chunks-th item rather than a contiguous range.
  const int64_t per_item = int64_t(a.head_dim) * std::max<int64_t>(1, a.context_lens[0]);
  const int chunks = pool.chunks_for(items, std::max<int64_t>(1, 16384 / per_item));
  pool.parallel_for(chunks, 1, [&](int chunk, int64_t, int64_t) {
    attention_items(a, chunk, chunks, scratch[chunk]);
  });
}

}  // namespace cpu
}  // namespace bg
