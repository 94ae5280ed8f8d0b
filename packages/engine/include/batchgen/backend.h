// The backend interface: memory plus the small set of ops the model is written
// over (ggml's backend vtable is the model). The CPU backend is the reference and
// is always built; the CUDA backend implements the same contract. A new op lands
// CPU-first.
//
// Conventions shared by every op:
//  - Activations are [T, width] row-major tensors in the backend's activation
//    dtype (act_dtype()); weights are [out, in] in weight_dtype(); accumulation is
//    f32 everywhere; logits are f32.
//  - Ops are asynchronous on devices that queue work; only copy_to_host() and
//    sample() return host data, and they synchronise as needed.
//  - Ops never allocate per call on the hot path: scratch they need is sized at
//    reserve_scratch() time from the engine's limits.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "batchgen/op_profile.h"
#include "batchgen/quant_weight.h"
#include "batchgen/sampling.h"
#include "batchgen/step_batch.h"
#include "batchgen/tensor.h"

namespace bg {

enum class Activation : uint8_t { gelu_tanh, silu };

// Rotary embedding as Hugging Face computes it (rotate_half layout: dims [0, d/2)
// pair with [d/2, d)). `inv_freq` has rotary_dim/2 entries, already scaled for
// rope-scaling variants (Llama 3.1 etc.); the model computes it once at load.
struct RopeConfig {
  int32_t head_dim = 0;
  int32_t rotary_dim = 0;             // == head_dim for every supported model
  std::vector<float> inv_freq;        // [rotary_dim / 2]
  float attention_scaling = 1.0f;     // multiplies cos/sin (1 unless a scaling type says otherwise)
};

// Geometry of the attention heads inside a fused QKV activation row:
// [q heads (num_heads*head_dim) | k heads (num_kv_heads*head_dim) | v heads (...)].
struct HeadLayout {
  int32_t num_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t q_width() const { return num_heads * head_dim; }
  int32_t kv_width() const { return num_kv_heads * head_dim; }
  int32_t qkv_width() const { return q_width() + 2 * kv_width(); }
};

// One layer's paged KV cache: `num_blocks` blocks of `block_size` token slots, each
// slot holding kv_width() values, K and V in separate tensors.
// Tensor shape: rows = num_blocks * block_size (a slot per row), cols = kv_width().
// Position j of sequence s lives in slot block_tables[s][j / block_size] * block_size
// + j % block_size.
struct KvLayer {
  Tensor k, v;
  int32_t block_size = 0;
};

// How one layer attends, beyond the causal mask.
struct AttentionParams {
  float scale = 1.0f;      // scores = q . k * scale
  // > 0: a query at position p sees only keys p - window < j <= p (sliding window);
  // keys before that are never read, so their KV blocks may have been given back.
  int32_t window = 0;
  float softcap = 0.0f;    // > 0: scores = tanh(scores / softcap) * softcap before the softmax
};

struct BackendInfo {
  std::string name;        // "cpu", "cuda:0"
  std::string device_name; // e.g. "NVIDIA H100 80GB HBM3" or the CPU model
  size_t total_memory = 0; // bytes the backend may use for weights + KV (device memory or host RAM)
  size_t free_memory = 0;
};

// A quantized linear weight in a backend's own layout (made by quant_upload, used
// by linear_quant). Destroying it frees its memory, so it must not outlive the backend.
class QuantLinear {
 public:
  virtual ~QuantLinear() = default;
  virtual int64_t rows() const = 0;
  virtual int64_t cols() const = 0;
  virtual int64_t bytes() const = 0;  // memory it holds
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual BackendInfo info() const = 0;
  virtual DType weight_dtype() const = 0;   // storage of weights (cpu: f32, cuda: bf16)
  virtual DType act_dtype() const = 0;      // activations and KV cache (cpu: f32, cuda: bf16)

  // --- memory -------------------------------------------------------------
  // Throws EngineError(out_of_memory) when the memory is not there.
  virtual Tensor alloc(DType dtype, int64_t rows, int64_t cols) = 0;
  virtual void free(Tensor& t) = 0;
  // Copy host data of `src_dtype` into rows [row0, row0 + rows) of `dst`,
  // converting to dst.dtype (weights arrive as bf16/f16/f32 from safetensors).
  virtual void upload(Tensor& dst, int64_t row0, const void* src, DType src_dtype,
                      int64_t rows) = 0;
  // Host memory for upload_async (page-locked on a device, so a copy from it runs
  // while the host goes on). Any thread may call these, also while steps run.
  // host_alloc throws EngineError(out_of_memory); host_free does not throw.
  virtual void* host_alloc(size_t bytes) = 0;
  virtual void host_free(void* p) = 0;
  // upload() of host_alloc memory already in dst.dtype, queued behind the work
  // queued before it; a device returns without waiting for the copy, so `src`
  // must stay as it is until upload_wait() has returned.
  virtual void upload_async(Tensor& dst, int64_t row0, const void* src, int64_t rows) = 0;
  // Returns once every upload_async so far is done (not waiting for later work).
  // Any thread may call it, also while steps run.
  virtual void upload_wait() = 0;
  // Copy a tensor to host memory as f32 (dst holds rows*cols floats). Synchronises.
  virtual void copy_to_host_f32(const Tensor& src, float* dst) = 0;
  // Upload this step's description (made on the host by the runner).
  virtual StepTensors upload_step(const StepBatch& batch) = 0;
  // Size scratch for at most max_tokens tokens, max_seqs sequences and contexts up to max_context.
  virtual void reserve_scratch(int32_t max_tokens, int32_t max_seqs, int32_t max_context,
                               const HeadLayout& heads) = 0;
  virtual void synchronize() = 0;

  // --- ops ----------------------------------------------------------------
  // out[t] = table[ids[t]] * scale.
  virtual void embed(const Tensor& table, const StepTensors& step, float scale, Tensor& out) = 0;

  // out = rms_norm(x) * (w + weight_offset); Gemma uses weight_offset = 1.
  virtual void rms_norm(const Tensor& x, const Tensor& w, float eps, float weight_offset,
                        Tensor& out) = 0;

  // residual += x; out = rms_norm(residual) * (w + weight_offset). (Fused residual add + norm.)
  virtual void add_rms_norm(Tensor& residual, const Tensor& x, const Tensor& w, float eps,
                            float weight_offset, Tensor& out) = 0;

  // out = x @ w^T (+ bias). x [T, K], w [N, K], bias [1, N] or null, out [T, N] (act or f32).
  // `role` only names the product for the op profile.
  virtual void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out, LinearRole role) = 0;
  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
    linear(x, w, bias, out, LinearRole::other);
  }

  // --- quantized weights (batchgen/quant_weight.h) ----------------------------
  // Takes w into the backend for linear_quant(), or returns null when this backend
  // has no product for w's format; the model then dequantizes w at load into a
  // weight_dtype() tensor for linear() (correct, but not the fast path).
  virtual std::unique_ptr<QuantLinear> quant_upload(const QuantWeight& w) {
    (void)w;
    return nullptr;
  }
  // linear() with a quantized weight: out = x @ dequant(w)^T (+ bias).
  virtual void linear_quant(const Tensor& x, const QuantLinear& w, const Tensor* bias, Tensor& out,
                            LinearRole role) {
    (void)x, (void)w, (void)bias, (void)out, (void)role;
    throw EngineError(ErrorCode::internal, "linear_quant on a backend without quantized weights");
  }
  void linear_quant(const Tensor& x, const QuantLinear& w, const Tensor* bias, Tensor& out) {
    linear_quant(x, w, bias, out, LinearRole::other);
  }
  // LoRA (batched low-rank updates, grouped by adapter): for each of the step's
  // LoRA segments (row0, rows, slot), with R = rank,
  //   tmp[row0 : row0+rows]  = x[row0 : row0+rows] @ a[slot*R : (slot+1)*R]^T
  //   out[row0 : row0+rows] += tmp[row0 : row0+rows] @ b[slot*N : (slot+1)*N]^T
  // where N = out.cols. Rows outside every segment are left alone. x [T, K] (act),
  // a [slots*R, K] and b [slots*N, R] (weight dtype; the adapter's scale is folded
  // into b), tmp f32 [>= T, R] (scratch the caller owns), out [T, N] (act, may be a
  // column slice of a wider activation).
  virtual void lora_add(const Tensor& x, const Tensor& a, const Tensor& b, int32_t rank,
                        const StepTensors& step, Tensor& tmp, Tensor& out) = 0;

  // In place on qkv [T, qkv_width]: each q head becomes rms_norm(head) * (q_w + offset)
  // and each k head rms_norm(head) * (k_w + offset); q_w and k_w are [1, head_dim].
  // (QK-norm: Qwen3, Gemma 3.) The v heads are left alone.
  virtual void head_rms_norm(Tensor& qkv, const HeadLayout& heads, const Tensor& q_w, const Tensor& k_w,
                             float eps, float weight_offset) = 0;

  // In place on qkv [T, qkv_width]: rotate the q and k heads of each token by its position.
  virtual void rope(Tensor& qkv, const StepTensors& step, const HeadLayout& heads,
                    const RopeConfig& rope) = 0;

  // Write the k and v heads of each token of qkv into its slot of the cache.
  virtual void kv_write(const Tensor& qkv, const StepTensors& step, const HeadLayout& heads,
                        KvLayer& cache) = 0;

  // Causal attention of every query token over its sequence's cached K/V (which
  // already holds this step's tokens). Token i of sequence s sits at position
  // context_lens[s] - q_len(s) + i and sees positions <= its own (and within
  // params.window of it). out [T, q_width].
  virtual void attention(const Tensor& qkv, const StepTensors& step, const HeadLayout& heads,
                         const KvLayer& cache, const AttentionParams& params, Tensor& out) = 0;

  // gate_up [T, 2I] = [gate | up]; out [T, I] = act(gate) * up.
  virtual void gated_activation(const Tensor& gate_up, Activation act, Tensor& out) = 0;

  // In place on f32 x: x = tanh(x / cap) * cap (final-logit soft-capping, Gemma 2).
  virtual void softcap(Tensor& x, float cap) = 0;

  // out[r] = x[step.logit_rows[r]] for the step's logit rows.
  virtual void gather_rows(const Tensor& x, const StepTensors& step, Tensor& out) = 0;

  // Sample one token per row of f32 logits [R, V]; rows.size() == R. Writes R ids
  // to out_ids (host). Greedy when temperature == 0. Synchronises.
  // With extras (sampling.h): logprobs of the raw logits first (into `logprobs`,
  // required when extras->has_logprobs()), then logit bias, penalties and grammar
  // masks applied to the logits (in place: the logits are spent afterwards), then
  // sampling as above. sample_row_cpu + logits_process_row_cpu define the result.
  virtual void sample(const Tensor& logits, const std::vector<SampleRow>& rows,
                      const SampleExtras* extras, int32_t* out_ids, const SampleLogprobs* logprobs) = 0;
  void sample(const Tensor& logits, const std::vector<SampleRow>& rows, int32_t* out_ids) {
    sample(logits, rows, nullptr, out_ids, nullptr);
  }

  // --- op profile (batchgen/op_profile.h) -----------------------------------------
  // Time per op category since the backend was made, as far as the device has got
  // (every op before the last call that synchronised is in). All zero when
  // BackendOptions::profile_ops is off.
  virtual OpProfile op_profile() = 0;
};

struct BackendOptions {
  std::string device = "cpu";   // "cpu" | "cuda" | "cuda:N"
  int32_t threads = 0;          // cpu: 0 = hardware concurrency
  bool deterministic = false;   // results independent of batch composition (may cost speed)
  bool profile_ops = false;     // time every op by category (op_profile(); the engine: BG_PROFILE_OPS=1)
};

// Creates the backend a device string names. Throws EngineError(unsupported) for
// "cuda" in a build without CUDA, EngineError(device) when no such device exists.
std::unique_ptr<Backend> backend_create(const BackendOptions& options);

std::unique_ptr<Backend> cpu_backend_create(const BackendOptions& options);
#ifdef BG_WITH_CUDA
std::unique_ptr<Backend> cuda_backend_create(const BackendOptions& options);
#endif

}  // namespace bg
