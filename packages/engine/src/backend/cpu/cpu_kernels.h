// The CPU backend's f32 kernels over raw host memory. Each output element is
// computed by one fixed sequence of f32 operations (fixed lane split, fixed
// reduction order) whatever the batch size, the element's place in a tile or the
// thread count, so a token's numbers never depend on its batch-mates.
#pragma once
#include <cstdint>

#include "backend/cpu/thread_pool.h"
#include "batchgen/quant_weight.h"

namespace bg {
namespace cpu {

// out[t, n] = dot(x[t, :K], w[n, :K]) (+ bias[n]) for t < T, n < N.
// Row strides in elements: xs for x, ws for w, os for out.
void linear_f32(ThreadPool& pool, const float* x, int64_t xs, const float* w, int64_t ws,
                const float* bias, float* out, int64_t os, int64_t T, int64_t N, int64_t K);

// linear_f32's output columns [n0, n1) on the calling thread, with the same
// arithmetic (an element's value does not depend on how columns are split).
void linear_f32_columns(const float* x, int64_t xs, const float* w, int64_t ws, const float* bias, float* out,
                        int64_t os, int64_t T, int64_t n0, int64_t n1, int64_t K);

// linear_f32 with a quantized weight: each block of kQuantBlockRows weight rows is
// dequantized (quant_dequantize_rows) into the chunk's scratch (kQuantBlockRows * K
// floats) and multiplied there, so every output equals linear_f32 on the
// dequantized weight bit for bit.
constexpr int64_t kQuantBlockRows = 16;
void linear_quant_f32(ThreadPool& pool, const float* x, int64_t xs, const QuantWeight& w, const float* bias,
                      float* out, int64_t os, int64_t T, float* const* scratch);

// out[t] = rms_norm(x[t]) * (w + offset), optionally after residual[t] += add[t]
// (then out uses the updated residual). x and residual may be the same rows.
void rms_norm_f32(ThreadPool& pool, float* x, int64_t xs, const float* add, int64_t as,
                  const float* w, float eps, float offset, float* out, int64_t os, int64_t T,
                  int64_t H);

// In place on each of T rows of qkv: heads [0, nq) become rms_norm(head) * (q_w + offset)
// and heads [nq, nq + nk) rms_norm(head) * (k_w + offset), each over head_dim floats.
void head_rms_norm_f32(ThreadPool& pool, float* qkv, int64_t stride, int64_t T, int32_t nq, int32_t nk,
                       int32_t head_dim, const float* q_w, const float* k_w, float eps, float offset);

// In place on T rows of N floats: x = tanh(x / cap) * cap.
void softcap_f32(ThreadPool& pool, float* x, int64_t stride, int64_t T, int64_t N, float cap);

// In place: rotate heads [0, num_rot_heads) of head_dim floats at the start of each
// row of qkv by the row's position (rotate_half layout). scratch holds head_dim floats
// per chunk of the pool.
void rope_f32(ThreadPool& pool, float* qkv, int64_t stride, const int32_t* positions, int64_t T,
              int32_t num_rot_heads, int32_t head_dim, const float* inv_freq, float scaling,
              float* const* scratch);

// LoRA segments (batchgen/backend.h, Backend::lora_add): for each segment
// (row0, rows, slot) of `segments` [num_segments * 3], tmp rows = x rows a_slot^T
// and out rows += tmp rows b_slot^T, where a_slot is rows [slot*rank, +rank) of a
// and b_slot rows [slot*n, +n) of b. Strides in elements.
struct LoraArgs {
  const float* x = nullptr; int64_t x_stride = 0;
  const float* a = nullptr; int64_t a_stride = 0;
  const float* b = nullptr; int64_t b_stride = 0;
  float* tmp = nullptr; int64_t tmp_stride = 0;
  float* out = nullptr; int64_t out_stride = 0;
  int32_t rank = 0;
  int64_t n = 0, k = 0;
  const int32_t* segments = nullptr;
  int32_t num_segments = 0;
};
void lora_add_f32(ThreadPool& pool, const LoraArgs& args);

enum class Act : uint8_t { gelu_tanh, silu };
// out[t, i] = act(gu[t, i]) * gu[t, I + i].
void gated_act_f32(ThreadPool& pool, const float* gu, int64_t gs, Act act, float* out, int64_t os,
                   int64_t T, int64_t I);

struct AttentionArgs {
  const float* qkv = nullptr;  // [T, qkv_width]
  int64_t qkv_stride = 0;
  const float* k_cache = nullptr;  // [slots, kv_width]
  const float* v_cache = nullptr;
  int64_t kv_stride = 0;
  int32_t block_size = 0;
  const int32_t* cu_seq_q = nullptr;      // [S+1]
  const int32_t* context_lens = nullptr;  // [S]
  const int32_t* block_tables = nullptr;  // [S, max_blocks]
  int32_t max_blocks = 0;
  int32_t num_seqs = 0, num_tokens = 0;
  int32_t num_heads = 0, num_kv_heads = 0, head_dim = 0;
  float scale = 1.0f;
  int32_t window = 0;     // > 0: keys p - window < j <= p only
  float softcap = 0.0f;   // > 0: scores = tanh(scores / softcap) * softcap
  float* out = nullptr;  // [T, num_heads * head_dim]
  int64_t out_stride = 0;
};
// Causal (optionally windowed, soft-capped) attention over the paged cache; scratch
// holds max_context floats per chunk.
void attention_f32(ThreadPool& pool, const AttentionArgs& a, float* const* scratch);

}  // namespace cpu
}  // namespace bg
