// The CPU backend: the reference every other backend is checked against. f32
// weights, activations and KV cache; f32 accumulation; a small thread pool of
// its own. Results are batch-invariant by construction (see cpu_kernels.h).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <string>
#include <thread>

#include "backend/cpu/cpu_kernels.h"
#include "backend/dtype_convert.h"
#include "backend/cpu/thread_pool.h"
#include "batchgen/backend.h"
#include "sample/sampler.h"

namespace bg {
namespace {

[[noreturn]] void internal_error(const std::string& msg) {
  throw EngineError(ErrorCode::internal, "cpu backend: " + msg);
}

void expect_dtype(const Tensor& t, DType d, const char* what) {
  if (t.dtype != d)
    internal_error(std::string(what) + " has dtype " + dtype_name(t.dtype) + ", expected " + dtype_name(d));
}

void expect(bool ok, const std::string& msg) {
  if (!ok) internal_error(msg);
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        size_t b = line.find_first_not_of(" \t", colon + 1);
        return b == std::string::npos ? "cpu" : line.substr(b);
      }
    }
  }
  return "cpu";
}

size_t mem_available_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  size_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  long pages = ::sysconf(_SC_AVPHYS_PAGES);
  long page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? size_t(pages) * size_t(page) : 0;
}

// A quantized weight on the CPU is the host representation itself; linear_quant
// dequantizes it a block of rows at a time (cpu_linear_quant.cpp).
// The shapes and dtypes of a linear op with an [n, k] weight.
void expect_linear(const Tensor& x, int64_t n, int64_t k, const Tensor* bias, const Tensor& out) {
  expect_dtype(x, DType::f32, "linear input");
  expect_dtype(out, DType::f32, "linear output");
  expect(x.cols == k, "linear: input width " + std::to_string(x.cols) + " != weight width " + std::to_string(k));
  expect(out.rows == x.rows && out.cols == n, "linear: output shape");
  if (bias) {
    expect_dtype(*bias, DType::f32, "linear bias");
    expect(bias->cols == n, "linear: bias width");
  }
}

// Adds the wall time of the enclosing op to a profile (null: profiling is off).
class OpClock {
 public:
  OpClock(OpProfile* profile, OpCategory c, double flops) : profile_(profile), c_(c), flops_(flops) {
    if (profile_) t0_ = std::chrono::steady_clock::now();
  }
  ~OpClock() {
    if (profile_)
      profile_->add(c_, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0_).count(),
                    flops_);
  }
  OpClock(const OpClock&) = delete;
  OpClock& operator=(const OpClock&) = delete;

 private:
  OpProfile* profile_;
  OpCategory c_;
  double flops_;
  std::chrono::steady_clock::time_point t0_;
};

class CpuQuantLinear final : public QuantLinear {
 public:
  explicit CpuQuantLinear(QuantWeight w) : w_(std::move(w)) {}
  int64_t rows() const override { return w_.rows; }
  int64_t cols() const override { return w_.cols; }
  int64_t bytes() const override { return w_.bytes(); }
  const QuantWeight& weight() const { return w_; }

 private:
  QuantWeight w_;
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const BackendOptions& options)
      : pool_(options.threads > 0 ? options.threads
                                  : std::max(1, int(std::thread::hardware_concurrency()))),
        profile_ops_(options.profile_ops) {
    info_.name = "cpu";
    info_.device_name = cpu_model_name();
    long pages = ::sysconf(_SC_PHYS_PAGES);
    long page = ::sysconf(_SC_PAGESIZE);
    info_.total_memory = pages > 0 && page > 0 ? size_t(pages) * size_t(page) : 0;
    scratch_.resize(size_t(pool_.size()));
    scratch_ptrs_.resize(size_t(pool_.size()), nullptr);
  }

  BackendInfo info() const override {
    BackendInfo i = info_;
    i.free_memory = mem_available_bytes();
    return i;
  }
  DType weight_dtype() const override { return DType::f32; }
  DType act_dtype() const override { return DType::f32; }

  // --- memory ---------------------------------------------------------------
  Tensor alloc(DType dtype, int64_t rows, int64_t cols) override {
    expect(rows >= 0 && cols >= 0, "alloc with a negative shape");
    Tensor t = tensor_view(nullptr, dtype, rows, cols);
    size_t bytes = size_t(rows) * size_t(cols) * dtype_size(dtype);
    // 64-byte alignment (a cache line) and a non-zero size so free() always has a pointer.
    size_t rounded = std::max<size_t>(64, (bytes + 63) / 64 * 64);
    t.data = std::aligned_alloc(64, rounded);
    if (!t.data)
      throw EngineError(ErrorCode::out_of_memory,
                        "cpu backend: cannot allocate " + std::to_string(bytes) + " bytes");
    return t;
  }

  void free(Tensor& t) override {
    std::free(t.data);
    t.data = nullptr;
    t.rows = t.cols = t.stride = 0;
  }

  void upload(Tensor& dst, int64_t row0, const void* src, DType src_dtype, int64_t rows) override {
    expect(row0 >= 0 && rows >= 0 && row0 + rows <= dst.rows, "upload outside the tensor");
    const int64_t cols = dst.cols;
    const char* s = static_cast<const char*>(src);
    if (dst.dtype == DType::i32) {
      expect(src_dtype == DType::i32, "upload of non-i32 data into an i32 tensor");
      for (int64_t r = 0; r < rows; ++r)
        std::memcpy(dst.ptr<int32_t>() + (row0 + r) * dst.stride, s + r * cols * 4, size_t(cols) * 4);
      return;
    }
    expect_dtype(dst, DType::f32, "upload destination");
    // Weights are large: convert rows in parallel. Source rows may be unaligned (mmap).
    pool_.parallel_for(rows, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, cols)),
                       [&](int, int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        float* d = dst.ptr<float>() + (row0 + r) * dst.stride;
        switch (src_dtype) {
          case DType::f32:
            std::memcpy(d, s + r * cols * 4, size_t(cols) * 4);
            break;
          case DType::bf16:
          case DType::f16: {
            const char* row = s + r * cols * 2;
            for (int64_t c = 0; c < cols; ++c) {
              uint16_t h;
              std::memcpy(&h, row + c * 2, 2);
              d[c] = src_dtype == DType::bf16 ? bf16_to_f32(h) : f16_to_f32(h);
            }
            break;
          }
          case DType::i32:
            break;  // refused below (no throwing inside a parallel region)
        }
      }
    });
    expect(src_dtype != DType::i32, "upload of i32 data into an f32 tensor");
  }

  void* host_alloc(size_t bytes) override {
    void* p = std::aligned_alloc(64, std::max<size_t>(64, (bytes + 63) / 64 * 64));
    if (!p)
      throw EngineError(ErrorCode::out_of_memory, "cpu backend: cannot allocate " + std::to_string(bytes) + " bytes");
    return p;
  }
  void host_free(void* p) override { std::free(p); }
  // Host memory is the backend's memory: the copy is done when this returns. One
  // memcpy a row on the calling thread (nothing to convert: a LoRA adapter's slot
  // is a few MB, which the pool's hand-off per tensor would only slow down).
  void upload_async(Tensor& dst, int64_t row0, const void* src, int64_t rows) override {
    expect(row0 >= 0 && rows >= 0 && row0 + rows <= dst.rows, "upload outside the tensor");
    const size_t row_bytes = size_t(dst.cols) * dtype_size(dst.dtype);
    char* d = static_cast<char*>(dst.data) + size_t(row0) * size_t(dst.stride) * dtype_size(dst.dtype);
    const char* s = static_cast<const char*>(src);
    if (dst.stride == dst.cols) {
      std::memcpy(d, s, row_bytes * size_t(rows));
      return;
    }
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(d + size_t(r) * size_t(dst.stride) * dtype_size(dst.dtype), s + size_t(r) * row_bytes, row_bytes);
  }
  void upload_wait() override {}

  void copy_to_host_f32(const Tensor& src, float* dst) override {
    expect_dtype(src, DType::f32, "copy_to_host_f32 source");
    for (int64_t r = 0; r < src.rows; ++r)
      std::memcpy(dst + r * src.cols, src.ptr<float>() + r * src.stride, size_t(src.cols) * 4);
  }

  // The returned tensors view this backend's copy of the batch; they stay valid
  // until the next upload_step.
  StepTensors upload_step(const StepBatch& b) override {
    const int32_t T = b.num_tokens(), S = b.num_seqs();
    const char* problem = step_batch_problem(b);
    expect(problem == nullptr, problem ? problem : "");
    const OpClock t = timed(OpCategory::step_upload);
    step_ = b;
    StepTensors st;
    auto view = [](std::vector<int32_t>& v, int64_t rows, int64_t cols) {
      return tensor_view(v.data(), DType::i32, rows, cols);
    };
    st.token_ids = view(step_.token_ids, 1, T);
    st.positions = view(step_.positions, 1, T);
    st.slot_mapping = view(step_.slot_mapping, 1, T);
    st.cu_seq_q = view(step_.cu_seq_q, 1, S + 1);
    st.context_lens = view(step_.context_lens, 1, S);
    st.block_tables = view(step_.block_tables, S, b.max_blocks_per_seq);
    st.logit_rows = view(step_.logit_rows, 1, int64_t(step_.logit_rows.size()));
    st.num_tokens = T;
    st.num_seqs = S;
    st.max_blocks_per_seq = b.max_blocks_per_seq;
    st.max_q_len = b.max_q_len;
    st.max_context_len = b.max_context_len;
    st.num_logit_rows = int32_t(step_.logit_rows.size());
    lora_segments_ = lora_segments_build(b);
    st.lora_segments = view(lora_segments_, int64_t(lora_segments_.size() / 3), 3);
    lora_segments_count(lora_segments_, st);
    return st;
  }

  void reserve_scratch(int32_t max_tokens, int32_t max_seqs, int32_t max_context,
                       const HeadLayout& heads) override {
    (void)max_tokens;
    (void)max_seqs;
    // Attention keeps one score per visible key; rope keeps cos and sin of a head.
    size_t need = size_t(std::max(max_context, heads.head_dim));
    try {
      for (size_t i = 0; i < scratch_.size(); ++i) {
        if (scratch_[i].size() < need) scratch_[i].assign(need, 0.0f);
        scratch_ptrs_[i] = scratch_[i].data();
      }
    } catch (const std::bad_alloc&) {
      throw EngineError(ErrorCode::out_of_memory, "cpu backend: no memory for attention scratch of " +
                                                      std::to_string(need) + " floats per thread");
    }
  }

  void synchronize() override {}

  // --- ops --------------------------------------------------------------------
  void embed(const Tensor& table, const StepTensors& step, float scale, Tensor& out) override {
    expect_dtype(table, DType::f32, "embedding table");
    expect_dtype(out, DType::f32, "embed output");
    expect(out.rows >= step.num_tokens && out.cols == table.cols, "embed output shape");
    const OpClock t = timed(OpCategory::embed);
    const int32_t* ids = step.token_ids.ptr<int32_t>();
    for (int32_t t = 0; t < step.num_tokens; ++t) {
      if (ids[t] < 0 || ids[t] >= table.rows)
        throw EngineError(ErrorCode::invalid_argument,
                          "token id " + std::to_string(ids[t]) + " is outside the vocabulary (" +
                              std::to_string(table.rows) + ")");
    }
    const int64_t H = table.cols;
    for (int32_t t = 0; t < step.num_tokens; ++t) {
      const float* src = table.ptr<float>() + int64_t(ids[t]) * table.stride;
      float* dst = out.ptr<float>() + int64_t(t) * out.stride;
      for (int64_t i = 0; i < H; ++i) dst[i] = src[i] * scale;
    }
  }

  void rms_norm(const Tensor& x, const Tensor& w, float eps, float weight_offset, Tensor& out) override {
    check_norm(x, w, out);
    const OpClock t = timed(OpCategory::norm);
    cpu::rms_norm_f32(pool_, const_cast<float*>(x.ptr<float>()), x.stride, nullptr, 0, w.ptr<float>(), eps,
                      weight_offset, out.ptr<float>(), out.stride, x.rows, x.cols);
  }

  void add_rms_norm(Tensor& residual, const Tensor& x, const Tensor& w, float eps, float weight_offset,
                    Tensor& out) override {
    check_norm(residual, w, out);
    expect_dtype(x, DType::f32, "add_rms_norm input");
    expect(x.rows == residual.rows && x.cols == residual.cols, "add_rms_norm input shape");
    const OpClock t = timed(OpCategory::norm);
    cpu::rms_norm_f32(pool_, residual.ptr<float>(), residual.stride, x.ptr<float>(), x.stride,
                      w.ptr<float>(), eps, weight_offset, out.ptr<float>(), out.stride, residual.rows,
                      residual.cols);
  }

  using Backend::linear;
  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out, LinearRole role) override {
    expect_dtype(w, DType::f32, "linear weight");
    expect_linear(x, w.rows, w.cols, bias, out);
    const OpClock t = timed(matmul_category(role), 2.0 * double(x.rows) * double(w.rows) * double(x.cols));
    cpu::linear_f32(pool_, x.ptr<float>(), x.stride, w.ptr<float>(), w.stride,
                    bias ? bias->ptr<float>() : nullptr, out.ptr<float>(), out.stride, x.rows, w.rows,
                    x.cols);
  }

  std::unique_ptr<QuantLinear> quant_upload(const QuantWeight& w) override {
    quant_validate(w, "cpu quant_upload");
    return std::make_unique<CpuQuantLinear>(w);
  }

  using Backend::linear_quant;
  void linear_quant(const Tensor& x, const QuantLinear& wq, const Tensor* bias, Tensor& out,
                    LinearRole role) override {
    const QuantWeight& w = static_cast<const CpuQuantLinear&>(wq).weight();
    expect_linear(x, w.rows, w.cols, bias, out);
    const OpClock t = timed(matmul_category(role), 2.0 * double(x.rows) * double(w.rows) * double(w.cols));
    // Grows to the widest weight once; later calls allocate nothing.
    const size_t need = size_t(cpu::kQuantBlockRows * w.cols);
    if (quant_scratch_.empty() || quant_scratch_[0].size() < need) {
      quant_scratch_.assign(size_t(pool_.size()), std::vector<float>(need));
      quant_scratch_ptrs_.clear();
      for (auto& v : quant_scratch_) quant_scratch_ptrs_.push_back(v.data());
    }
    cpu::linear_quant_f32(pool_, x.ptr<float>(), x.stride, w, bias ? bias->ptr<float>() : nullptr,
                          out.ptr<float>(), out.stride, x.rows, quant_scratch_ptrs_.data());
  }

  void lora_add(const Tensor& x, const Tensor& a, const Tensor& b, int32_t rank, const StepTensors& step,
                Tensor& tmp, Tensor& out) override {
    for (const Tensor* t : {&x, &a, &b, const_cast<const Tensor*>(&tmp), const_cast<const Tensor*>(&out)})
      expect_dtype(*t, DType::f32, "lora_add operand");
    expect(rank > 0 && a.cols == x.cols && b.cols == rank && a.rows % rank == 0 && b.rows % out.cols == 0 &&
               a.rows / rank == b.rows / out.cols,
           "lora_add: a [slots*rank, K] and b [slots*N, rank] do not match x and out");
    expect(out.rows == x.rows && tmp.rows >= x.rows && tmp.cols >= rank, "lora_add: x, tmp and out rows");
    const int32_t* seg = step.lora_segments.ptr<int32_t>();
    const int64_t slots = a.rows / rank;
    for (int32_t g = 0; g < step.num_lora_segments; ++g) {
      expect(seg[3 * g] >= 0 && seg[3 * g] + seg[3 * g + 1] <= x.rows && seg[3 * g + 2] >= 0 &&
                 seg[3 * g + 2] < slots,
             "lora_add: segment outside the batch or the adapter slots");
    }
    cpu::LoraArgs l;
    l.x = x.ptr<float>(), l.x_stride = x.stride;
    l.a = a.ptr<float>(), l.a_stride = a.stride;
    l.b = b.ptr<float>(), l.b_stride = b.stride;
    l.tmp = tmp.ptr<float>(), l.tmp_stride = tmp.stride;
    l.out = out.ptr<float>(), l.out_stride = out.stride;
    l.rank = rank, l.n = out.cols, l.k = x.cols;
    l.segments = seg, l.num_segments = step.num_lora_segments;
    const OpClock t = timed(OpCategory::lora);
    cpu::lora_add_f32(pool_, l);
  }

  void rope(Tensor& qkv, const StepTensors& step, const HeadLayout& heads, const RopeConfig& rope) override {
    expect_dtype(qkv, DType::f32, "rope input");
    expect(qkv.cols == heads.qkv_width() && qkv.rows == step.num_tokens, "rope: qkv shape");
    expect(rope.rotary_dim == heads.head_dim && rope.head_dim == heads.head_dim &&
               rope.inv_freq.size() == size_t(heads.head_dim / 2),
           "rope: config does not match the head layout");
    expect(have_scratch(size_t(heads.head_dim)), "rope before reserve_scratch");
    const OpClock t = timed(OpCategory::rope_kv_write);
    // q heads and k heads are adjacent at the start of each row.
    cpu::rope_f32(pool_, qkv.ptr<float>(), qkv.stride, step.positions.ptr<int32_t>(), qkv.rows,
                  heads.num_heads + heads.num_kv_heads, heads.head_dim, rope.inv_freq.data(),
                  rope.attention_scaling, scratch_ptrs_.data());
  }

  void head_rms_norm(Tensor& qkv, const HeadLayout& heads, const Tensor& q_w, const Tensor& k_w, float eps,
                     float weight_offset) override {
    expect_dtype(qkv, DType::f32, "head_rms_norm input");
    expect_dtype(q_w, DType::f32, "q_norm weight");
    expect_dtype(k_w, DType::f32, "k_norm weight");
    expect(qkv.cols == heads.qkv_width(), "head_rms_norm: qkv shape");
    expect(q_w.cols == heads.head_dim && k_w.cols == heads.head_dim, "head_rms_norm: weights must be [1, head_dim]");
    const OpClock t = timed(OpCategory::norm);
    cpu::head_rms_norm_f32(pool_, qkv.ptr<float>(), qkv.stride, qkv.rows, heads.num_heads, heads.num_kv_heads,
                           heads.head_dim, q_w.ptr<float>(), k_w.ptr<float>(), eps, weight_offset);
  }

  void softcap(Tensor& x, float cap) override {
    expect_dtype(x, DType::f32, "softcap input");
    expect(cap > 0, "softcap: the cap must be positive");
    const OpClock t = timed(OpCategory::logits);
    cpu::softcap_f32(pool_, x.ptr<float>(), x.stride, x.rows, x.cols, cap);
  }

  void kv_write(const Tensor& qkv, const StepTensors& step, const HeadLayout& heads, KvLayer& cache) override {
    expect_dtype(qkv, DType::f32, "kv_write input");
    expect_dtype(cache.k, DType::f32, "k cache");
    expect_dtype(cache.v, DType::f32, "v cache");
    expect(qkv.cols == heads.qkv_width() && qkv.rows == step.num_tokens, "kv_write: qkv shape");
    expect(cache.k.cols == heads.kv_width() && cache.v.cols == heads.kv_width(), "kv_write: cache width");
    const OpClock t = timed(OpCategory::rope_kv_write);
    const int32_t* slots = step.slot_mapping.ptr<int32_t>();
    const int64_t kw = heads.kv_width();
    for (int32_t t = 0; t < step.num_tokens; ++t) {
      if (slots[t] < 0) continue;  // a padding token
      expect(slots[t] < cache.k.rows, "kv_write: slot " + std::to_string(slots[t]) + " outside the cache");
      const float* row = qkv.ptr<float>() + int64_t(t) * qkv.stride;
      std::memcpy(cache.k.ptr<float>() + int64_t(slots[t]) * cache.k.stride, row + heads.q_width(), size_t(kw) * 4);
      std::memcpy(cache.v.ptr<float>() + int64_t(slots[t]) * cache.v.stride, row + heads.q_width() + kw,
                  size_t(kw) * 4);
    }
  }

  void attention(const Tensor& qkv, const StepTensors& step, const HeadLayout& heads, const KvLayer& cache,
                 const AttentionParams& params, Tensor& out) override {
    expect_dtype(qkv, DType::f32, "attention input");
    expect_dtype(out, DType::f32, "attention output");
    expect(qkv.cols == heads.qkv_width() && qkv.rows == step.num_tokens, "attention: qkv shape");
    expect(out.cols == heads.q_width() && out.rows == step.num_tokens, "attention: output shape");
    expect(cache.block_size > 0, "attention: cache block_size is not set");
    expect(heads.num_kv_heads > 0 && heads.num_heads % heads.num_kv_heads == 0, "attention: head counts");
    expect(params.window >= 0, "attention: negative window");
    const int32_t bs = cache.block_size;
    const int64_t num_blocks = cache.k.rows / bs;
    const int32_t* ctx = step.context_lens.ptr<int32_t>();
    const int32_t* cu = step.cu_seq_q.ptr<int32_t>();
    const int32_t* tables = step.block_tables.ptr<int32_t>();
    int32_t max_ctx = 0;
    for (int32_t s = 0; s < step.num_seqs; ++s) {
      max_ctx = std::max(max_ctx, ctx[s]);
      const int32_t nb = (ctx[s] + bs - 1) / bs;
      expect(nb <= step.max_blocks_per_seq, "attention: context longer than the block table");
      // Blocks wholly before the window of the sequence's first query are never read.
      const int32_t first_pos = ctx[s] - (cu[s + 1] - cu[s]);
      const int32_t lo = params.window > 0 ? std::max(0, first_pos - params.window + 1) : 0;
      for (int32_t b = lo / bs; b < nb; ++b) {
        const int32_t id = tables[int64_t(s) * step.max_blocks_per_seq + b];
        expect(id >= 0 && id < num_blocks, "attention: block id " + std::to_string(id) + " outside the cache");
      }
    }
    if (step.num_tokens == 0) return;
    expect(have_scratch(size_t(max_ctx)), "attention: context " + std::to_string(max_ctx) +
                                              " exceeds the reserved scratch");
    cpu::AttentionArgs a;
    a.qkv = qkv.ptr<float>();
    a.qkv_stride = qkv.stride;
    a.k_cache = cache.k.ptr<float>();
    a.v_cache = cache.v.ptr<float>();
    a.kv_stride = cache.k.stride;
    expect(cache.v.stride == cache.k.stride, "attention: k and v caches differ in stride");
    a.block_size = bs;
    a.cu_seq_q = step.cu_seq_q.ptr<int32_t>();
    a.context_lens = ctx;
    a.block_tables = tables;
    a.max_blocks = step.max_blocks_per_seq;
    a.num_seqs = step.num_seqs;
    a.num_tokens = step.num_tokens;
    a.num_heads = heads.num_heads;
    a.num_kv_heads = heads.num_kv_heads;
    a.head_dim = heads.head_dim;
    a.scale = params.scale;
    a.window = params.window;
    a.softcap = params.softcap;
    a.out = out.ptr<float>();
    a.out_stride = out.stride;
    // One kernel for every token here: a step is decode when all its sequences are.
    const OpClock t = timed(step.max_q_len == 1 ? OpCategory::attention_decode : OpCategory::attention_prefill);
    cpu::attention_f32(pool_, a, scratch_ptrs_.data());
  }

  void gated_activation(const Tensor& gate_up, Activation act, Tensor& out) override {
    expect_dtype(gate_up, DType::f32, "gated_activation input");
    expect_dtype(out, DType::f32, "gated_activation output");
    expect(gate_up.cols == 2 * out.cols && gate_up.rows == out.rows, "gated_activation: shapes");
    const OpClock t = timed(OpCategory::activation);
    cpu::gated_act_f32(pool_, gate_up.ptr<float>(), gate_up.stride,
                       act == Activation::gelu_tanh ? cpu::Act::gelu_tanh : cpu::Act::silu, out.ptr<float>(),
                       out.stride, out.rows, out.cols);
  }

  void gather_rows(const Tensor& x, const StepTensors& step, Tensor& out) override {
    expect(x.dtype == out.dtype && x.cols == out.cols, "gather_rows: shapes");
    expect(out.rows >= step.num_logit_rows, "gather_rows: output too small");
    const OpClock t = timed(OpCategory::logits);
    const int32_t* rows = step.logit_rows.ptr<int32_t>();
    const size_t esz = dtype_size(x.dtype);
    for (int32_t r = 0; r < step.num_logit_rows; ++r) {
      expect(rows[r] >= 0 && rows[r] < x.rows, "gather_rows: row outside the input");
      std::memcpy(static_cast<char*>(out.data) + size_t(r) * size_t(out.stride) * esz,
                  static_cast<const char*>(x.data) + size_t(rows[r]) * size_t(x.stride) * esz,
                  size_t(x.cols) * esz);
    }
  }

  using Backend::sample;
  void sample(const Tensor& logits, const std::vector<SampleRow>& rows, const SampleExtras* extras,
              int32_t* out_ids, const SampleLogprobs* logprobs) override {
    expect_dtype(logits, DType::f32, "sample logits");
    expect(rows.size() == size_t(logits.rows), "sample: one SampleRow per logits row");
    expect(!(extras && extras->has_logprobs()) || logprobs, "sample: logprobs asked without an output");
    const OpClock t = timed(OpCategory::sample);
    sample_rows_cpu(logits.ptr<float>(), logits.rows, logits.cols, logits.stride, rows, out_ids, extras,
                    logprobs);
  }

  OpProfile op_profile() override { return profile_; }

 private:
  OpClock timed(OpCategory c, double flops = 0) { return OpClock(profile_ops_ ? &profile_ : nullptr, c, flops); }

  void check_norm(const Tensor& x, const Tensor& w, const Tensor& out) {
    expect_dtype(x, DType::f32, "rms_norm input");
    expect_dtype(w, DType::f32, "rms_norm weight");
    expect_dtype(out, DType::f32, "rms_norm output");
    expect(w.cols == x.cols && out.cols == x.cols && out.rows == x.rows, "rms_norm: shapes");
  }

  bool have_scratch(size_t floats) const { return !scratch_.empty() && scratch_[0].size() >= floats; }

  ThreadPool pool_;
  BackendInfo info_;
  StepBatch step_;
  std::vector<int32_t> lora_segments_;
  std::vector<std::vector<float>> scratch_;  // one per pool chunk
  std::vector<float*> scratch_ptrs_;
  std::vector<std::vector<float>> quant_scratch_;  // linear_quant: kQuantBlockRows rows per pool chunk
  std::vector<float*> quant_scratch_ptrs_;
  bool profile_ops_;
  OpProfile profile_;
};

}  // namespace

std::unique_ptr<Backend> cpu_backend_create(const BackendOptions& options) {
  if (options.threads < 0)
    throw EngineError(ErrorCode::invalid_argument, "threads must be >= 0 (0 = all cores)");
  return std::make_unique<CpuBackend>(options);
}

}  // namespace bg
