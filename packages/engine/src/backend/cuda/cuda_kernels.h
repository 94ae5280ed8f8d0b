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

#include "batchgen/backend.h"

namespace bg {
namespace cuda {

// out[t] = table[ids[t]] * scale for t < T.
void launch_embed(const Tensor& table, const int32_t* ids, int32_t T, float scale, Tensor& out,
                  cudaStream_t stream);

// out = rms_norm(x) * (w + offset); when residual != nullptr first residual += x
// (rounded to the residual's dtype) and the norm is taken of the new residual.
void launch_rms_norm(Tensor* residual, const Tensor& x, const Tensor& w, float eps, float offset,
                     Tensor& out, cudaStream_t stream);

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

// Fills work with (seq, row_tile) pairs for every sequence: ceil(q_len * group / 64)
// items each. Returns the count. `work` holds room for attention_work_bound().
int32_t attention_work_build(const int32_t* cu_seq_q, int32_t num_seqs, int32_t group,
                             int32_t* work);
int64_t attention_work_bound(int32_t max_tokens, int32_t max_seqs, int32_t group);

struct AttentionArgs {
  const void* qkv = nullptr; int64_t qkv_stride = 0;      // bf16 [T, qkv_width]
  const void* k_cache = nullptr; const void* v_cache = nullptr;
  int64_t kv_stride = 0;                                  // elements between slots
  void* out = nullptr; int64_t out_stride = 0;            // bf16 [T, q_width]
  const int32_t* cu_seq_q = nullptr; const int32_t* context_lens = nullptr;
  int32_t num_seqs = 0, num_tokens = 0;
  const int32_t* block_tables = nullptr; int32_t max_blocks_per_seq = 0;
  const int32_t* work = nullptr; int32_t num_work = 0;
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
// sequence: batch invariant by construction.
void launch_attention(const AttentionArgs& args, cudaStream_t stream);

// --- matrix products -----------------------------------------------------------
// out [M, N] = x [M, K] * w[N, K]^T (+ bias [N]), bf16 inputs, f32 accumulation,
// out bf16 or f32. Our own tensor-core kernel: each output element is reduced over
// K in one fixed order whatever M is (the deterministic mode's GEMM).
void launch_gemm_fixed_order(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out,
                             cudaStream_t stream);

// --- sampling ------------------------------------------------------------------
// One id per row of f32 logits [R, V] following sample_row_cpu's definition
// (src/sample/sampler.h): greedy argmax, else min-p, top-k, top-p and the inverse
// CDF in (probability desc, id asc) order. `rows` and `out_ids` are device arrays.
void launch_sample(const Tensor& logits, const SampleRow* rows, int32_t R, int32_t* out_ids,
                   cudaStream_t stream);

}  // namespace cuda
}  // namespace bg
