// Launchers of the CUDA backend's own kernels. Host-callable, asynchronous on the
// given stream; each checks its launch and throws EngineError on failure or on an
// argument the kernel cannot take (dtype, alignment). The backend (cuda_backend.cu)
// maps the Backend ops onto these; dev/cuda benchmarks and tests call them directly.
//
// Layout conventions are the Backend's: row-major [rows, cols] views with a row
// stride in elements (batchgen/tensor.h); step arrays are the StepTensors' i32
// device arrays.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "batchgen/backend.h"

namespace bg {
namespace cuda {

// out[t] = table[ids[t]] * scale for t < T.
void launch_embed(const Tensor& table, const int32_t* ids, int32_t T, float scale, Tensor& out,
                  cudaStream_t stream);

// out = rms_norm(x) * (w + offset); when residual != nullptr first residual += x
// (rounded to the residual's dtype) and the norm is taken of the new residual.
// variant: 0 the 16-byte-access kernel when the rows allow it (width % 8 == 0,
// <= 8192, 16-byte aligned rows), 1 the scalar kernel (dev/cuda comparisons).
void launch_rms_norm(Tensor* residual, const Tensor& x, const Tensor& w, float eps, float offset,
                     Tensor& out, cudaStream_t stream, int variant = 0);

// In place on the q and k heads of qkv [T, qkv_width], token t at positions[t].
struct RopeArgs {
  int32_t head_dim = 0, rotary_dim = 0, num_q_heads = 0, num_k_heads = 0;
  float attention_scaling = 1.0f;
  float inv_freq[256];  // rotary_dim / 2 entries
};
void launch_rope(Tensor& qkv, const int32_t* positions, int32_t T, const RopeArgs& args,
                 cudaStream_t stream);

// In place on qkv [T, qkv_width]: q heads [0, nq) become rms_norm(head) * (q_w + offset),
// k heads [nq, nq + nk) rms_norm(head) * (k_w + offset); q_w, k_w are [1, head_dim].
void launch_head_rms_norm(Tensor& qkv, int32_t nq, int32_t nk, int32_t head_dim, const Tensor& q_w,
                          const Tensor& k_w, float eps, float offset, cudaStream_t stream);

// In place on f32 x [R, N]: x = tanh(x / cap) * cap.
void launch_softcap(Tensor& x, float cap, cudaStream_t stream);

// Writes the k and v heads of each token into its cache slot (slot < 0: skipped).
void launch_kv_write(const Tensor& qkv, const int32_t* slot_mapping, int32_t T,
                     const HeadLayout& heads, KvLayer& cache, cudaStream_t stream);

// out [T, I] = act(gate_up[:, :I]) * gate_up[:, I:].
void launch_gated_activation(const Tensor& gate_up, Activation act, Tensor& out,
                             cudaStream_t stream);

// out[r] = x[rows[r]] for r < R.
void launch_gather_rows(const Tensor& x, const int32_t* rows, int32_t R, Tensor& out,
                        cudaStream_t stream);

// out[t, :] = bias[0, :] for every row of out (before a GEMM with beta = 1).
void launch_broadcast_rows(const Tensor& bias, Tensor& out, cudaStream_t stream);

// --- attention ---------------------------------------------------------------
// Packed query rows per work item: (token, head-in-group) rows of one sequence and
// one KV head. The host builds the work list (attention_work_build) at upload.
constexpr int32_t kAttnRowsPerItem = 64;
constexpr int32_t kAttnMaxHeadDim = 512;

// The step's attention work list, built on the host at upload (attention_work_build)
// in three sections of i32, one after the other:
//   items:   (seq, row_tile) pairs for attention_kernel, ceil(q_len * group / 64) per
//            sequence it serves, the longest key walks first;
//   decode:  (seq, partition, part_keys, slot) quadruples for the split-K decode
//            kernel, one per (one-token sequence, partition of its keys); slot is the
//            sequence's first partial slot, -1 when it has one partition;
//   combine: (seq, num_partitions, slot, 0) per decode sequence with several.
struct AttentionWork {
  int32_t items = 0, decode = 0, combine = 0;
  int32_t slots = 0;  // partial slots the decode section writes
  size_t ints() const { return 2 * size_t(items) + 4 * size_t(decode) + 4 * size_t(combine); }
};

// Keys per decode partition for the head shape, before the cap on partitions per
// sequence (attention_work_build); 0 where the split-K decode kernel has no instance
// (head_dim other than 64/128/256, or more than 16 q heads per KV head).
int32_t attention_decode_part(int32_t head_dim, int32_t num_heads, int32_t num_kv_heads);
constexpr int32_t kAttnMaxPartitions = 16;  // per sequence: bounds the partial memory
// Partial slots a step of at most max_seqs sequences of at most max_context keys can need.
int64_t attention_partial_slots_bound(int32_t max_seqs, int32_t max_context, int32_t decode_part);
// Floats of partial memory per slot: num_heads x (m, l, o[head_dim]).
inline int64_t attention_partial_slot_floats(int32_t num_heads, int32_t head_dim) {
  return int64_t(num_heads) * (head_dim + 2);
}

// decode_part > 0 (the default mode): one-token sequences go to the decode section,
// split into partitions of part_keys keys, where part_keys depends only on the
// sequence's own context length and decode_part (so a row's arithmetic never depends
// on the rest of the batch). decode_part == 0 (the deterministic mode): every
// sequence is an item of attention_kernel, so a row's arithmetic is also the same
// whether its token is decoded or is one of a prefill chunk's.
AttentionWork attention_work_build(const int32_t* cu_seq_q, const int32_t* context_lens, int32_t num_seqs,
                                   int32_t group, int32_t decode_part, std::vector<int32_t>& work);

struct AttentionArgs {
  const void* qkv = nullptr; int64_t qkv_stride = 0;      // bf16 [T, qkv_width]
  const void* k_cache = nullptr; const void* v_cache = nullptr;
  int64_t kv_stride = 0;                                  // elements between slots
  void* out = nullptr; int64_t out_stride = 0;            // bf16 [T, q_width]
  const int32_t* cu_seq_q = nullptr; const int32_t* context_lens = nullptr;
  int32_t num_seqs = 0, num_tokens = 0;
  const int32_t* block_tables = nullptr; int32_t max_blocks_per_seq = 0;
  const int32_t* work = nullptr; int32_t num_work = 0;                 // items section
  const int32_t* decode_work = nullptr; int32_t num_decode_work = 0;   // decode section
  const int32_t* combine_work = nullptr; int32_t num_combine_work = 0; // combine section
  float* partials = nullptr;  // >= AttentionWork::slots x attention_partial_slot_floats() floats
  int32_t num_heads = 0, num_kv_heads = 0, head_dim = 0, block_size = 0;
  float scale = 1.0f;
  int32_t window = 0;     // > 0: a query at position p sees keys p - window < j <= p only
  float softcap = 0.0f;   // > 0: scores = tanh(scores / softcap) * softcap
  int32_t block_size_log2 = -1;  // log2(block_size) when a power of two, else -1 (set by launch_attention)
  int32_t variant = 0;  // 0: the best for the device; 1: the single-buffered kernel (dev/cuda)
};
// Causal (optionally sliding-window, soft-capped) attention over the paged cache; keys
// before a query's window are never read. Flash-attention style (online softmax,
// f32 accumulation, P rounded to bf16 for the P*V product) for head_dim 64, 128
// and 256 with 16-byte aligned rows; a simple f32 kernel for any other head_dim up
// to kAttnMaxHeadDim. The reduction order of a query row depends only on its own
// sequence: batch invariant by construction. The decode section (default mode) takes
// the split-K kernel (attention_decode.cu) and its combine pass.
void launch_attention(const AttentionArgs& args, cudaStream_t stream);
// True when launch_attention takes the simple kernel: one launch for every token, the
// work lists unused (head sizes without a tensor-core instance, unaligned rows).
bool attention_simple(const AttentionArgs& args);
// The decode section and its combine pass; false where there is no instance for the
// head_dim (attention_decode_part() returned 0 for it).
bool launch_attention_decode(const AttentionArgs& args, cudaStream_t stream);

// --- matrix products -----------------------------------------------------------
// out [M, N] = x [M, K] * w[N, K]^T (+ bias [N]), bf16 inputs, f32 accumulation,
// out bf16 or f32. Our own tensor-core kernel: each output element is reduced over
// K in one fixed order whatever M is (the deterministic mode's GEMM).
void launch_gemm_fixed_order(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out,
                             cudaStream_t stream);

// --- sampling ------------------------------------------------------------------
// One id per row of f32 logits [R, V] following sample_row_cpu's definition
// (src/sample/sampler.h), bit for bit: greedy argmax, else the probability-level
// histogram's min-p, top-k, top-p and inverse CDF in (logit desc, id asc) order.
// `rows` and `out_ids` are device arrays. any_sampled = false (every row greedy)
// takes the argmax kernel alone. variant: 0 the best for the device, 1 one block a
// row (any device), 2 a cluster of 8 blocks a row with the row in shared memory
// (sm_90; throws where sample_v2_available is false). 0 means 1 (v1 measured faster
// on an H100), unless BG_CUDA_SAMPLE=2 in the environment makes it mean 2.
void launch_sample(const Tensor& logits, const SampleRow* rows, int32_t R, int32_t* out_ids,
                   cudaStream_t stream, bool any_sampled = true, int variant = 0);
bool sample_v2_available(int32_t vocab);

// SampleExtras (sampling.h) in device memory; a null pointer is a list the step
// does not have. Scratch outputs: pen_raw / bias_raw (one per list entry: the raw
// logit before processing), lse [R], top_ids / top_lps [R * kMaxTopLogprobs],
// sampled_lp [R].
struct SampleExtrasDev {
  int32_t R = 0;
  const float* presence = nullptr;
  const float* frequency = nullptr;
  const float* repetition = nullptr;
  const int32_t* pen_offsets = nullptr;
  const int32_t* pen_tokens = nullptr;
  const int32_t* pen_counts = nullptr;
  float* pen_raw = nullptr;
  const int32_t* bias_offsets = nullptr;
  const int32_t* bias_tokens = nullptr;
  const float* bias_values = nullptr;
  float* bias_raw = nullptr;
  int32_t mask_words = 0;
  const int32_t* mask_row = nullptr;
  const uint32_t* masks = nullptr;
  const int32_t* top_logprobs = nullptr;
  float* lse = nullptr;
  int32_t* top_ids = nullptr;
  float* top_lps = nullptr;
  float* sampled_lp = nullptr;
};

// logprobs_row_cpu's top part on the raw logits: per row with top_logprobs >= 0,
// log-sum-exp into lse and the top alternatives in (logit desc, id asc) order.
void launch_logprobs_top(const Tensor& logits, const SampleExtrasDev& x, cudaStream_t stream);
// logits_process_row_cpu in place (bias, repetition, frequency/presence, mask),
// saving each listed token's raw logit first.
void launch_logits_process(Tensor& logits, const SampleExtrasDev& x, cudaStream_t stream);
// The sampled token's raw logprob (after launch_sample; ids on the device).
void launch_logprobs_sampled(const Tensor& logits, const SampleExtrasDev& x, const int32_t* ids,
                             cudaStream_t stream);

}  // namespace cuda
}  // namespace bg
