// The CUDA backend (see cuda_backend.h for its contract): device memory, host <->
// device transfers, the per-step upload, cuBLAS for the matrix products, and the
// dispatch of every other op to our kernels (cuda_kernels.h).
#include "backend/cuda/cuda_backend.h"

#include <cublas_v2.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/lora_kernels.h"
#include "backend/dtype_convert.h"

namespace bg {
namespace cuda {

void check_cuda(cudaError_t e, const char* what, const char* file, int line) {
  if (e == cudaSuccess) return;
  (void)cudaGetLastError();  // clear a non-sticky error so the next call is not blamed
  const char* base = std::strrchr(file, '/');
  std::string msg = std::string("CUDA error in ") + what + " (" + (base ? base + 1 : file) + ":" +
                    std::to_string(line) + "): " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
  throw EngineError(e == cudaErrorMemoryAllocation ? ErrorCode::out_of_memory : ErrorCode::device, msg);
}

}  // namespace cuda

namespace {

using cuda::check_cuda;

[[noreturn]] void internal_error(const std::string& msg) {
  throw EngineError(ErrorCode::internal, "cuda backend: " + msg);
}
void expect(bool ok, const std::string& msg) {
  if (!ok) internal_error(msg);
}
// (dtype_name lives in bg_core, which links after this library.)
const char* name_of(DType d) {
  switch (d) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::i32: return "i32";
  }
  return "?";
}
void expect_dtype(const Tensor& t, DType d, const char* what) {
  if (t.dtype != d) internal_error(std::string(what) + " has dtype " + name_of(t.dtype) + ", expected " + name_of(d));
}

void check_cublas(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  throw EngineError(s == CUBLAS_STATUS_ALLOC_FAILED ? ErrorCode::out_of_memory : ErrorCode::device,
                    std::string("cuBLAS error in ") + what + ": " + cublasGetStatusName(s) + ": " +
                        cublasGetStatusString(s));
}

std::string mib(size_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

// Memory that grows on demand (contents are not kept), allocated and freed by Mem:
// PinnedHostMemory or DeviceMemory below.
template <class Mem>
class GrowingBuffer {
 public:
  ~GrowingBuffer() {
    if (p_) Mem::free(p_);
  }
  void* ensure(size_t bytes) {
    if (bytes > bytes_) {
      if (p_) Mem::free(p_);
      p_ = nullptr;
      bytes_ = 0;
      check_cuda(Mem::alloc(&p_, bytes), Mem::alloc_call, __FILE__, __LINE__);
      bytes_ = bytes;
    }
    return p_;
  }
  size_t bytes() const { return bytes_; }
  void* data() const { return p_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

struct PinnedHostMemory {
  static constexpr const char* alloc_call = "cudaMallocHost(&p_, bytes)";
  static cudaError_t alloc(void** p, size_t bytes) { return cudaMallocHost(p, bytes); }
  static void free(void* p) { cudaFreeHost(p); }
};

struct DeviceMemory {
  static constexpr const char* alloc_call = "cudaMalloc(&p_, bytes)";
  static cudaError_t alloc(void** p, size_t bytes) { return cudaMalloc(p, bytes); }
  static void free(void* p) { cudaFree(p); }
};

// Pinned host memory that grows on demand.
using PinnedBuffer = GrowingBuffer<PinnedHostMemory>;
// Device memory that grows on demand. The caller makes sure no queued work still
// uses the old memory before growing.
using DeviceBuffer = GrowingBuffer<DeviceMemory>;

Tensor i32_view(void* base, size_t offset_elems, int64_t rows, int64_t cols) {
  return tensor_view(static_cast<int32_t*>(base) + offset_elems, DType::i32, rows, cols);
}

// Host conversion of n elements between storage dtypes (torch's rounding).
void convert_row(const char* src, DType sd, char* dst, DType dd, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float f;
    if (sd == DType::f32) {
      std::memcpy(&f, src + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      f = sd == DType::bf16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
    if (dd == DType::f32) {
      std::memcpy(dst + 4 * i, &f, 4);
    } else {
      const uint16_t h = f32_to_bf16(f);
      std::memcpy(dst + 2 * i, &h, 2);
    }
  }
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, bool deterministic) : device_(device), deterministic_(deterministic) {
    BG_CUDA_CHECK(cudaSetDevice(device_));
    BG_CUDA_CHECK(cudaGetDeviceProperties(&prop_, device_));
    if (prop_.major < 8)
      throw EngineError(ErrorCode::unsupported,
                        std::string("cuda backend needs compute capability 8.0 or newer (bf16 tensor cores); ") +
                            prop_.name + " is " + std::to_string(prop_.major) + "." +
                            std::to_string(prop_.minor));
    BG_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    BG_CUDA_CHECK(cudaEventCreateWithFlags(&step_copied_, cudaEventDisableTiming));
    check_cublas(cublasCreate(&cublas_), "cublasCreate");
    check_cublas(cublasSetStream(cublas_, stream_), "cublasSetStream");
    BG_CUDA_CHECK(cudaMalloc(&cublas_workspace_, kCublasWorkspace));
    check_cublas(cublasSetWorkspace(cublas_, cublas_workspace_, kCublasWorkspace), "cublasSetWorkspace");
  }

  ~CudaBackend() override {
    cudaSetDevice(device_);
    if (stream_) cudaStreamSynchronize(stream_);
    if (cublas_) cublasDestroy(cublas_);
    if (cublas_workspace_) cudaFree(cublas_workspace_);
    if (step_copied_) cudaEventDestroy(step_copied_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  BackendInfo info() const override {
    use_device();
    BackendInfo i;
    i.name = "cuda:" + std::to_string(device_);
    i.device_name = prop_.name;
    size_t free_b = 0, total_b = 0;
    BG_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    i.total_memory = total_b;
    i.free_memory = free_b;
    return i;
  }
  DType weight_dtype() const override { return DType::bf16; }
  DType act_dtype() const override { return DType::bf16; }

  // --- memory -------------------------------------------------------------------
  Tensor alloc(DType dtype, int64_t rows, int64_t cols) override {
    use_device();
    expect(rows >= 0 && cols >= 0, "alloc with a negative shape");
    Tensor t = tensor_view(nullptr, dtype, rows, cols);
    const size_t bytes = std::max<size_t>(256, size_t(rows) * size_t(cols) * dtype_size(dtype));
    cudaError_t e = cudaMalloc(&t.data, bytes);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      throw EngineError(ErrorCode::out_of_memory,
                        "CUDA out of memory: cannot allocate " + mib(bytes) + " on cuda:" +
                            std::to_string(device_) + " (" + prop_.name + ", " + mib(free_b) +
                            " free of " + mib(total_b) + ")");
    }
    BG_CUDA_CHECK(e);
    return t;
  }

  void free(Tensor& t) override {
    use_device();
    if (t.data) BG_CUDA_CHECK(cudaFree(t.data));
    t.data = nullptr;
    t.rows = t.cols = t.stride = 0;
  }

  void upload(Tensor& dst, int64_t row0, const void* src, DType src_dtype, int64_t rows) override {
    use_device();
    expect(row0 >= 0 && rows >= 0 && row0 + rows <= dst.rows, "upload outside the tensor");
    if (rows == 0 || dst.cols == 0) return;
    const size_t dsz = dtype_size(dst.dtype);
    const size_t row_bytes = size_t(dst.cols) * dsz;
    char* dbase = static_cast<char*>(dst.data) + size_t(row0) * size_t(dst.stride) * dsz;
    if (src_dtype == dst.dtype) {
      BG_CUDA_CHECK(cudaMemcpy2DAsync(dbase, size_t(dst.stride) * dsz, src, row_bytes, row_bytes,
                                      size_t(rows), cudaMemcpyHostToDevice, stream_));
      BG_CUDA_CHECK(cudaStreamSynchronize(stream_));
      return;
    }
    expect(dst.dtype == DType::bf16 || dst.dtype == DType::f32, "upload into a tensor of unsupported dtype");
    expect(src_dtype != DType::i32, "upload of i32 data into a float tensor");
    const size_t src_row = size_t(dst.cols) * dtype_size(src_dtype);
    const int64_t chunk = std::max<int64_t>(1, int64_t(kStageBytes / row_bytes));
    char* stage = static_cast<char*>(stage_.ensure(std::max(kStageBytes, row_bytes)));
    for (int64_t r = 0; r < rows; r += chunk) {
      const int64_t n = std::min(chunk, rows - r);
      for (int64_t i = 0; i < n; ++i)
        convert_row(static_cast<const char*>(src) + size_t(r + i) * src_row, src_dtype,
                    stage + size_t(i) * row_bytes, dst.dtype, dst.cols);
      BG_CUDA_CHECK(cudaMemcpy2DAsync(dbase + size_t(r) * size_t(dst.stride) * dsz,
                                      size_t(dst.stride) * dsz, stage, row_bytes, row_bytes, size_t(n),
                                      cudaMemcpyHostToDevice, stream_));
      BG_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the stage is reused by the next chunk
    }
  }

  void copy_to_host_f32(const Tensor& src, float* dst) override {
    use_device();
    BG_CUDA_CHECK(cudaStreamSynchronize(stream_));
    if (src.rows == 0 || src.cols == 0) return;
    const size_t esz = dtype_size(src.dtype);
    const size_t row_bytes = size_t(src.cols) * esz;
    if (src.dtype == DType::f32) {
      BG_CUDA_CHECK(cudaMemcpy2D(dst, row_bytes, src.data, size_t(src.stride) * esz, row_bytes,
                                 size_t(src.rows), cudaMemcpyDeviceToHost));
      return;
    }
    std::vector<char> tmp(row_bytes * size_t(src.rows));
    BG_CUDA_CHECK(cudaMemcpy2D(tmp.data(), row_bytes, src.data, size_t(src.stride) * esz, row_bytes,
                               size_t(src.rows), cudaMemcpyDeviceToHost));
    const int64_t n = src.rows * src.cols;
    if (src.dtype == DType::i32) {
      for (int64_t i = 0; i < n; ++i) {
        int32_t v;
        std::memcpy(&v, tmp.data() + 4 * i, 4);
        dst[i] = float(v);
      }
    } else {
      convert_row(tmp.data(), src.dtype, reinterpret_cast<char*>(dst), DType::f32, n);
    }
  }

  // Packs the step into one pinned buffer, one host-to-device copy. The returned
  // tensors view this backend's device copy; they stay valid until the next
  // upload_step (which reuses the memory once the queued work is done with it).
  StepTensors upload_step(const StepBatch& b) override {
    use_device();
    expect(heads_.num_heads > 0, "upload_step before reserve_scratch");
    const int32_t T = b.num_tokens(), S = b.num_seqs();
    const int32_t R = int32_t(b.logit_rows.size());
    const char* problem = step_batch_problem(b);
    expect(problem == nullptr, problem ? problem : "");

    const int32_t group = heads_.num_heads / heads_.num_kv_heads;
    const cuda::AttentionWork aw =
        S ? cuda::attention_work_build(b.cu_seq_q.data(), b.context_lens.data(), S, group, decode_part(), work_)
          : cuda::AttentionWork{};
    const size_t W = aw.ints();

    // Segments at 16-element (64-byte) boundaries.
    auto pad = [](size_t n) { return (n + 15) / 16 * 16; };
    const size_t o_tok = 0, o_pos = o_tok + pad(T), o_slot = o_pos + pad(T), o_cu = o_slot + pad(T),
                 o_ctx = o_cu + pad(S + 1), o_bt = o_ctx + pad(S), o_rows = o_bt + pad(b.block_tables.size()),
                 o_work = o_rows + pad(R), o_lora = o_work + pad(W);
    const std::vector<int32_t> lora = lora_segments_build(b);
    const size_t total = o_lora + pad(lora.size());
    const size_t bytes = std::max<size_t>(total * 4, 64);

    BG_CUDA_CHECK(cudaEventSynchronize(step_copied_));  // the pinned buffer's last copy is done
    if (bytes > step_dev_.bytes()) {
      BG_CUDA_CHECK(cudaStreamSynchronize(stream_));  // queued work may still read the old memory
      step_dev_.ensure(bytes + bytes / 2);
    }
    if (bytes > step_host_.bytes()) step_host_.ensure(bytes + bytes / 2);
    void* dev = step_dev_.data();
    int32_t* host = static_cast<int32_t*>(step_host_.data());
    auto put = [&](size_t off, const std::vector<int32_t>& v) {
      if (!v.empty()) std::memcpy(host + off, v.data(), v.size() * 4);
    };
    put(o_tok, b.token_ids);
    put(o_pos, b.positions);
    put(o_slot, b.slot_mapping);
    put(o_cu, b.cu_seq_q);
    put(o_ctx, b.context_lens);
    put(o_bt, b.block_tables);
    put(o_rows, b.logit_rows);
    if (W) std::memcpy(host + o_work, work_.data(), W * 4);
    put(o_lora, lora);
    // The split decode's partials; reserve_scratch sized them for the engine's limits,
    // so this grows only for a step beyond them (a test's).
    const size_t partial_bytes = size_t(aw.slots) * size_t(cuda::attention_partial_slot_floats(
                                                         heads_.num_heads, heads_.head_dim)) * sizeof(float);
    if (partial_bytes > attn_partials_.bytes()) {
      BG_CUDA_CHECK(cudaStreamSynchronize(stream_));  // queued work may still use the old memory
      attn_partials_.ensure(partial_bytes);
    }
    BG_CUDA_CHECK(cudaMemcpyAsync(dev, host, total * 4, cudaMemcpyHostToDevice, stream_));
    BG_CUDA_CHECK(cudaEventRecord(step_copied_, stream_));

    StepTensors st;
    st.token_ids = i32_view(dev, o_tok, 1, T);
    st.positions = i32_view(dev, o_pos, 1, T);
    st.slot_mapping = i32_view(dev, o_slot, 1, T);
    st.cu_seq_q = i32_view(dev, o_cu, 1, S + 1);
    st.context_lens = i32_view(dev, o_ctx, 1, S);
    st.block_tables = i32_view(dev, o_bt, S, b.max_blocks_per_seq);
    st.logit_rows = i32_view(dev, o_rows, 1, R);
    st.work = i32_view(dev, o_work, 1, int64_t(std::max<size_t>(W, 1)));
    st.num_tokens = T;
    st.num_seqs = S;
    st.max_blocks_per_seq = b.max_blocks_per_seq;
    st.max_q_len = b.max_q_len;
    st.max_context_len = b.max_context_len;
    st.num_logit_rows = R;
    st.num_work = aw.items;
    st.num_decode_work = aw.decode;
    st.num_combine_work = aw.combine;
    st.lora_segments = i32_view(dev, o_lora, int64_t(lora.size() / 3), 3);
    lora_segments_count(lora, st);
    return st;
  }

  void reserve_scratch(int32_t max_tokens, int32_t max_seqs, int32_t max_context,
                       const HeadLayout& heads) override {
    use_device();
    (void)max_tokens;
    expect(heads.num_heads > 0 && heads.num_kv_heads > 0 && heads.num_heads % heads.num_kv_heads == 0,
           "reserve_scratch: bad head layout");
    heads_ = heads;
    ensure_sample_capacity(max_seqs);
    // Before the KV cache takes the free memory: the split decode's partials for the
    // worst step within the limits (Gemma-2B, 1024 sequences of 8k: 135 MB).
    const int64_t slots = cuda::attention_partial_slots_bound(max_seqs, max_context, decode_part());
    const size_t bytes = size_t(slots) * size_t(cuda::attention_partial_slot_floats(heads.num_heads, heads.head_dim)) *
                         sizeof(float);
    if (bytes > attn_partials_.bytes()) {
      BG_CUDA_CHECK(cudaStreamSynchronize(stream_));
      attn_partials_.ensure(bytes);
    }
  }

  void synchronize() override {
    use_device();
    BG_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  // --- ops ------------------------------------------------------------------------
  void embed(const Tensor& table, const StepTensors& step, float scale, Tensor& out) override {
    use_device();
    expect(out.rows >= step.num_tokens && out.cols == table.cols, "embed output shape");
    cuda::launch_embed(table, step.token_ids.ptr<int32_t>(), step.num_tokens, scale, out, stream_);
  }

  void rms_norm(const Tensor& x, const Tensor& w, float eps, float weight_offset, Tensor& out) override {
    use_device();
    cuda::launch_rms_norm(nullptr, x, w, eps, weight_offset, out, stream_);
  }

  void add_rms_norm(Tensor& residual, const Tensor& x, const Tensor& w, float eps, float weight_offset,
                    Tensor& out) override {
    use_device();
    cuda::launch_rms_norm(&residual, x, w, eps, weight_offset, out, stream_);
  }

  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) override {
    use_device();
    expect(x.cols == w.cols, "linear: input width " + std::to_string(x.cols) + " != weight width " +
                                 std::to_string(w.cols));
    expect(out.rows == x.rows && out.cols == w.rows, "linear: output shape");
    expect_dtype(x, DType::bf16, "linear input");
    expect_dtype(w, DType::bf16, "linear weight");
    expect(out.dtype == DType::bf16 || out.dtype == DType::f32, "linear output must be bf16 or f32");
    if (bias) {
      expect_dtype(*bias, DType::bf16, "linear bias");
      expect(bias->cols == w.rows, "linear: bias width");
    }
    if (x.rows == 0) return;
    if (deterministic_) {
      cuda::launch_gemm_fixed_order(x, w, bias, out, stream_);
      return;
    }
    // Row-major out[M, N] = x[M, K] w[N, K]^T is column-major out^T = w^T(op T) x^T.
    const float alpha = 1.0f, beta = bias ? 1.0f : 0.0f;
    if (bias) cuda::launch_broadcast_rows(*bias, out, stream_);
    check_cublas(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(w.rows), int(x.rows), int(x.cols),
                              &alpha, w.data, CUDA_R_16BF, int(w.stride), x.data, CUDA_R_16BF,
                              int(x.stride), &beta, out.data,
                              out.dtype == DType::f32 ? CUDA_R_32F : CUDA_R_16BF, int(out.stride),
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx");
  }

  void lora_add(const Tensor& x, const Tensor& a, const Tensor& b, int32_t rank, const StepTensors& step,
                Tensor& tmp, Tensor& out) override {
    use_device();
    expect(rank > 0 && a.cols == x.cols && b.cols == rank && a.rows % rank == 0 && b.rows % out.cols == 0 &&
               a.rows / rank == b.rows / out.cols,
           "lora_add: a [slots*rank, K] and b [slots*N, rank] do not match x and out");
    expect(out.rows == x.rows && tmp.rows >= x.rows && tmp.cols >= rank, "lora_add: x, tmp and out rows");
    if (step.num_lora_segments == 0) return;
    cuda::launch_lora_add(x, a, b, rank, step.lora_segments.ptr<int32_t>(), step.num_lora_segments,
                          step.max_lora_rows, tmp, out, stream_);
  }

  void rope(Tensor& qkv, const StepTensors& step, const HeadLayout& heads, const RopeConfig& rope) override {
    use_device();
    expect(qkv.cols == heads.qkv_width() && qkv.rows == step.num_tokens, "rope: qkv shape");
    const int32_t rot = rope.rotary_dim > 0 ? rope.rotary_dim : heads.head_dim;
    expect(rope.head_dim == heads.head_dim && rope.inv_freq.size() == size_t(rot / 2) && rot / 2 <= 256,
           "rope: config does not match the head layout");
    cuda::RopeArgs a;
    a.head_dim = heads.head_dim;
    a.rotary_dim = rot;
    a.num_q_heads = heads.num_heads;
    a.num_k_heads = heads.num_kv_heads;
    a.attention_scaling = rope.attention_scaling;
    std::fill(std::begin(a.inv_freq), std::end(a.inv_freq), 0.0f);
    std::copy(rope.inv_freq.begin(), rope.inv_freq.end(), a.inv_freq);
    cuda::launch_rope(qkv, step.positions.ptr<int32_t>(), step.num_tokens, a, stream_);
  }

  void head_rms_norm(Tensor& qkv, const HeadLayout& heads, const Tensor& q_w, const Tensor& k_w, float eps,
                     float weight_offset) override {
    use_device();
    expect(qkv.cols == heads.qkv_width(), "head_rms_norm: qkv shape");
    cuda::launch_head_rms_norm(qkv, heads.num_heads, heads.num_kv_heads, heads.head_dim, q_w, k_w, eps,
                               weight_offset, stream_);
  }

  void softcap(Tensor& x, float cap) override {
    use_device();
    cuda::launch_softcap(x, cap, stream_);
  }

  void kv_write(const Tensor& qkv, const StepTensors& step, const HeadLayout& heads, KvLayer& cache) override {
    use_device();
    expect(qkv.cols == heads.qkv_width() && qkv.rows == step.num_tokens, "kv_write: qkv shape");
    cuda::launch_kv_write(qkv, step.slot_mapping.ptr<int32_t>(), step.num_tokens, heads, cache, stream_);
  }

  // Keys per split-K decode partition; 0 in the deterministic mode, where a decode
  // token takes the same kernel as a prefill chunk's (cuda_kernels.h).
  int32_t decode_part() const {
    return deterministic_ ? 0 : cuda::attention_decode_part(heads_.head_dim, heads_.num_heads, heads_.num_kv_heads);
  }

  void attention(const Tensor& qkv, const StepTensors& step, const HeadLayout& heads, const KvLayer& cache,
                 const AttentionParams& params, Tensor& out) override {
    use_device();
    expect(qkv.cols == heads.qkv_width() && qkv.rows == step.num_tokens, "attention: qkv shape");
    expect(out.cols == heads.q_width() && out.rows == step.num_tokens, "attention: output shape");
    expect(cache.block_size > 0, "attention: cache block_size is not set");
    expect(cache.k.stride == cache.v.stride, "attention: k and v caches differ in stride");
    expect(heads.num_kv_heads > 0 && heads.num_heads % heads.num_kv_heads == 0 &&
               heads.num_heads / heads.num_kv_heads == heads_.num_heads / heads_.num_kv_heads,
           "attention: head layout differs from the one reserve_scratch was given");
    expect_dtype(qkv, DType::bf16, "attention input");
    expect_dtype(cache.k, DType::bf16, "k cache");
    expect_dtype(cache.v, DType::bf16, "v cache");
    expect_dtype(out, DType::bf16, "attention output");
    cuda::AttentionArgs a;
    a.qkv = qkv.data;
    a.qkv_stride = qkv.stride;
    a.k_cache = cache.k.data;
    a.v_cache = cache.v.data;
    a.kv_stride = cache.k.stride;
    a.out = out.data;
    a.out_stride = out.stride;
    a.cu_seq_q = step.cu_seq_q.ptr<int32_t>();
    a.context_lens = step.context_lens.ptr<int32_t>();
    a.num_seqs = step.num_seqs;
    a.num_tokens = step.num_tokens;
    a.block_tables = step.block_tables.ptr<int32_t>();
    a.max_blocks_per_seq = step.max_blocks_per_seq;
    const int32_t* work = step.work.ptr<int32_t>();
    a.work = work;
    a.num_work = step.num_work;
    a.decode_work = work + 2 * size_t(step.num_work);
    a.num_decode_work = step.num_decode_work;
    a.combine_work = a.decode_work + 4 * size_t(step.num_decode_work);
    a.num_combine_work = step.num_combine_work;
    a.partials = static_cast<float*>(attn_partials_.data());
    a.num_heads = heads.num_heads;
    a.num_kv_heads = heads.num_kv_heads;
    a.head_dim = heads.head_dim;
    a.block_size = cache.block_size;
    a.scale = params.scale;
    a.window = params.window;
    a.softcap = params.softcap;
    cuda::launch_attention(a, stream_);
  }

  void gated_activation(const Tensor& gate_up, Activation act, Tensor& out) override {
    use_device();
    cuda::launch_gated_activation(gate_up, act, out, stream_);
  }

  void gather_rows(const Tensor& x, const StepTensors& step, Tensor& out) override {
    use_device();
    expect(x.cols == out.cols && out.rows >= step.num_logit_rows, "gather_rows: shapes");
    cuda::launch_gather_rows(x, step.logit_rows.ptr<int32_t>(), step.num_logit_rows, out, stream_);
  }

  using Backend::sample;
  void sample(const Tensor& logits, const std::vector<SampleRow>& rows, const SampleExtras* extras,
              int32_t* out_ids, const SampleLogprobs* logprobs) override {
    use_device();
    expect_dtype(logits, DType::f32, "sample logits");
    expect(rows.size() == size_t(logits.rows), "sample: one SampleRow per logits row");
    expect(!(extras && extras->has_logprobs()) || logprobs, "sample: logprobs asked without an output");
    const int32_t R = int32_t(rows.size());
    if (R == 0) return;
    ensure_sample_capacity(R);
    std::memcpy(sample_host_rows_, rows.data(), rows.size() * sizeof(SampleRow));
    BG_CUDA_CHECK(cudaMemcpyAsync(sample_dev_rows_, sample_host_rows_, rows.size() * sizeof(SampleRow),
                                  cudaMemcpyHostToDevice, stream_));
    cuda::SampleExtrasDev x;
    if (extras) x = upload_extras(*extras, R);
    // The logits are spent after sampling, so the processing writes into them.
    Tensor& work = const_cast<Tensor&>(logits);
    cuda::launch_logprobs_top(logits, x, stream_);
    cuda::launch_logits_process(work, x, stream_);
    bool any_sampled = false;
    for (const SampleRow& r : rows) any_sampled = any_sampled || (r.temperature != 0.0f && r.top_k != 1);
    cuda::launch_sample(logits, sample_dev_rows_, R, sample_dev_ids_, stream_, any_sampled);
    cuda::launch_logprobs_sampled(logits, x, sample_dev_ids_, stream_);
    BG_CUDA_CHECK(cudaMemcpyAsync(sample_host_ids_, sample_dev_ids_, size_t(R) * 4, cudaMemcpyDeviceToHost,
                                  stream_));
    const size_t top = size_t(R) * kMaxTopLogprobs;
    float* host_lp = nullptr;
    if (x.top_logprobs) {
      const size_t lp_bytes = (size_t(R) + 2 * top) * 4;
      if (lp_bytes > lp_host_.bytes()) lp_host_.ensure(lp_bytes + lp_bytes / 2);
      host_lp = static_cast<float*>(lp_host_.data());
      BG_CUDA_CHECK(cudaMemcpyAsync(host_lp, x.sampled_lp, size_t(R) * 4, cudaMemcpyDeviceToHost, stream_));
      BG_CUDA_CHECK(cudaMemcpyAsync(host_lp + R, x.top_ids, top * 4, cudaMemcpyDeviceToHost, stream_));
      BG_CUDA_CHECK(cudaMemcpyAsync(host_lp + R + top, x.top_lps, top * 4, cudaMemcpyDeviceToHost, stream_));
    }
    BG_CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::memcpy(out_ids, sample_host_ids_, size_t(R) * 4);
    if (host_lp) {
      for (int32_t r = 0; r < R; ++r) {
        const int32_t k = extras->top_logprobs[size_t(r)];
        if (k < 0) continue;
        logprobs->sampled[r] = host_lp[r];
        std::memcpy(logprobs->top_ids + size_t(r) * kMaxTopLogprobs, host_lp + R + size_t(r) * kMaxTopLogprobs,
                    size_t(k) * 4);
        std::memcpy(logprobs->top_logprobs + size_t(r) * kMaxTopLogprobs,
                    host_lp + R + top + size_t(r) * kMaxTopLogprobs, size_t(k) * 4);
      }
    }
  }

 private:
  static constexpr size_t kCublasWorkspace = size_t(32) << 20;
  static constexpr size_t kStageBytes = size_t(64) << 20;

  void use_device() const { BG_CUDA_CHECK(cudaSetDevice(device_)); }

  // Packs a step's SampleExtras into one pinned buffer, copies it in one transfer
  // (16-byte aligned lists), and lays the device pointers and scratch out over it.
  cuda::SampleExtrasDev upload_extras(const SampleExtras& e, int32_t R) {
    cuda::SampleExtrasDev x;
    x.R = R;
    size_t bytes = 0;
    auto reserve = [&](size_t n) {
      const size_t at = bytes;
      bytes += (n * 4 + 15) & ~size_t(15);
      return at;
    };
    struct Slot { const void* src; size_t n; size_t at; };
    std::vector<Slot> slots;
    auto list = [&](const auto& v) -> size_t {
      if (v.empty()) return SIZE_MAX;
      const size_t at = reserve(v.size());
      slots.push_back(Slot{v.data(), v.size(), at});
      return at;
    };
    const size_t presence = list(e.presence), frequency = list(e.frequency), repetition = list(e.repetition);
    const size_t pen_offsets = list(e.pen_offsets), pen_tokens = list(e.pen_tokens), pen_counts = list(e.pen_counts);
    const size_t bias_offsets = list(e.bias_offsets), bias_tokens = list(e.bias_tokens), bias_values = list(e.bias_values);
    const size_t mask_row = list(e.mask_row), masks = list(e.masks), top = list(e.top_logprobs);
    const size_t upload = bytes;
    const size_t pen_raw = reserve(std::max<size_t>(1, e.pen_tokens.size()));
    const size_t bias_raw = reserve(std::max<size_t>(1, e.bias_tokens.size()));
    const size_t lse = reserve(size_t(R)), sampled = reserve(size_t(R));
    const size_t top_ids = reserve(size_t(R) * kMaxTopLogprobs), top_lps = reserve(size_t(R) * kMaxTopLogprobs);
    // With room to spare: rows come and go every step, and growing means a fresh
    // cudaMallocHost / cudaMalloc (and cudaFree waits for the queued forward pass).
    if (upload > extras_host_.bytes()) extras_host_.ensure(upload + upload / 2);
    if (bytes > extras_dev_.bytes()) extras_dev_.ensure(bytes + bytes / 2);
    char* host = static_cast<char*>(extras_host_.data());
    char* dev = static_cast<char*>(extras_dev_.data());
    for (const Slot& sl : slots) std::memcpy(host + sl.at, sl.src, sl.n * 4);
    if (upload > 0) BG_CUDA_CHECK(cudaMemcpyAsync(dev, host, upload, cudaMemcpyHostToDevice, stream_));
    auto at = [&](size_t off) -> void* { return off == SIZE_MAX ? nullptr : dev + off; };
    x.presence = static_cast<const float*>(at(presence));
    x.frequency = static_cast<const float*>(at(frequency));
    x.repetition = static_cast<const float*>(at(repetition));
    x.pen_offsets = static_cast<const int32_t*>(at(pen_offsets));
    x.pen_tokens = static_cast<const int32_t*>(at(pen_tokens));
    x.pen_counts = static_cast<const int32_t*>(at(pen_counts));
    x.bias_offsets = static_cast<const int32_t*>(at(bias_offsets));
    x.bias_tokens = static_cast<const int32_t*>(at(bias_tokens));
    x.bias_values = static_cast<const float*>(at(bias_values));
    x.mask_words = e.mask_words;
    x.mask_row = static_cast<const int32_t*>(at(mask_row));
    x.masks = static_cast<const uint32_t*>(at(masks));
    x.top_logprobs = static_cast<const int32_t*>(at(top));
    x.pen_raw = static_cast<float*>(at(pen_raw));
    x.bias_raw = static_cast<float*>(at(bias_raw));
    x.lse = static_cast<float*>(at(lse));
    x.sampled_lp = static_cast<float*>(at(sampled));
    x.top_ids = static_cast<int32_t*>(at(top_ids));
    x.top_lps = static_cast<float*>(at(top_lps));
    return x;
  }

  void ensure_sample_capacity(int32_t rows) {
    if (rows <= sample_capacity_) return;
    BG_CUDA_CHECK(cudaStreamSynchronize(stream_));
    const size_t n = size_t(rows);
    sample_dev_rows_ = static_cast<SampleRow*>(sample_dev_rows_buf_.ensure(n * sizeof(SampleRow)));
    sample_dev_ids_ = static_cast<int32_t*>(sample_dev_ids_buf_.ensure(n * 4));
    sample_host_rows_ = static_cast<SampleRow*>(sample_host_rows_buf_.ensure(n * sizeof(SampleRow)));
    sample_host_ids_ = static_cast<int32_t*>(sample_host_ids_buf_.ensure(n * 4));
    sample_capacity_ = rows;
  }

  int device_;
  bool deterministic_;
  cudaDeviceProp prop_{};
  cudaStream_t stream_ = nullptr;
  cudaEvent_t step_copied_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  void* cublas_workspace_ = nullptr;
  HeadLayout heads_{};

  DeviceBuffer step_dev_;
  PinnedBuffer step_host_;
  std::vector<int32_t> work_;
  DeviceBuffer attn_partials_;  // the split decode's partials (attention_decode.cu)
  PinnedBuffer stage_;

  int32_t sample_capacity_ = 0;
  DeviceBuffer sample_dev_rows_buf_, sample_dev_ids_buf_;
  PinnedBuffer sample_host_rows_buf_, sample_host_ids_buf_;
  SampleRow* sample_dev_rows_ = nullptr;
  int32_t* sample_dev_ids_ = nullptr;
  SampleRow* sample_host_rows_ = nullptr;
  int32_t* sample_host_ids_ = nullptr;
  DeviceBuffer extras_dev_;
  PinnedBuffer extras_host_, lp_host_;
};

// "cuda" -> 0, "cuda:N" -> N, else -1.
int parse_ordinal(const std::string& device) {
  if (device == "cuda") return 0;
  if (device.rfind("cuda:", 0) != 0 || device.size() == 5 || device.size() > 11) return -1;
  int n = 0;
  for (size_t i = 5; i < device.size(); ++i) {
    if (device[i] < '0' || device[i] > '9') return -1;
    n = n * 10 + (device[i] - '0');
  }
  return n;
}

}  // namespace

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

std::unique_ptr<Backend> cuda_backend_create(const BackendOptions& options) {
  const int ordinal = parse_ordinal(options.device);
  if (ordinal < 0)
    throw EngineError(ErrorCode::invalid_argument,
                      "unknown device \"" + options.device + "\" (expected \"cuda\" or \"cuda:N\")");
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    (void)cudaGetLastError();
    throw EngineError(ErrorCode::device,
                      std::string("no CUDA device is available for \"") + options.device + "\" (" +
                          (e != cudaSuccess ? cudaGetErrorString(e) : "no GPU found") +
                          "); use device \"cpu\" on a machine without a GPU");
  }
  if (ordinal >= count)
    throw EngineError(ErrorCode::device, "device \"" + options.device + "\" does not exist: this machine has " +
                                             std::to_string(count) + " CUDA device(s), cuda:0 to cuda:" +
                                             std::to_string(count - 1));
  return std::make_unique<CudaBackend>(ordinal, options.deterministic);
}

}  // namespace bg
