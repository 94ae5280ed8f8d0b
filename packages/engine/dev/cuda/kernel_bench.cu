// Micro-benchmarks of the CUDA backend's kernels on the shapes of workload A
// (Gemma-2B / 7B), beside the two ceilings they are measured against: HBM
// bandwidth (a device-to-device copy, bytes read + written) and the bf16 matrix
// rate (cuBLAS on 8192^3). Correctness is cuda_ops_test's job; this only times.
//
//   build/.../kernel_bench [--quick]
//
// Prints one line per kernel: median time over the repeats (CUDA events), the
// achieved rate, and that rate as a fraction of the measured ceiling. Results and
// the predictions they were checked against: dev/cuda/NOTES.md.
#include <cublas_v2.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/lora_kernels.h"

using namespace bg;
using namespace bg::cuda;

namespace {

#define CK(x) BG_CUDA_CHECK(x)

__global__ void fill_random(bf16* p, size_t n, uint64_t seed, float scale) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    uint64_t h = rng_mix(seed ^ rng_mix(i));
    p[i] = __float2bfloat16(scale * (float(h >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f));
  }
}
__global__ void fill_random_f32(float* p, size_t n, uint64_t seed, float scale) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    uint64_t h = rng_mix(seed ^ rng_mix(i));
    p[i] = scale * (float(h >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f);
  }
}

struct Dev {
  void* p = nullptr;
  size_t bytes = 0;
  explicit Dev(size_t b) : bytes(b) { CK(cudaMalloc(&p, b)); }
  ~Dev() { cudaFree(p); }
  Dev(const Dev&) = delete;
};

Tensor view(void* p, DType d, int64_t rows, int64_t cols) { return tensor_view(p, d, rows, cols); }

Tensor rand_bf16(Dev& d, int64_t rows, int64_t cols, float scale, uint64_t seed) {
  fill_random<<<1024, 256>>>(static_cast<bf16*>(d.p), size_t(rows * cols), seed, scale);
  CK(cudaGetLastError());
  return view(d.p, DType::bf16, rows, cols);
}

// Median milliseconds of `reps` timed runs after `warm` untimed ones.
double time_ms(const std::function<void()>& f, int reps = 10, int warm = 2) {
  for (int i = 0; i < warm; ++i) f();
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    CK(cudaEventRecord(a));
    f();
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float x;
    CK(cudaEventElapsedTime(&x, a, b));
    ms.push_back(x);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

double g_hbm = 0, g_mma = 0;  // measured ceilings: bytes/s, flop/s

void row(const std::string& name, double ms, double bytes, double flops) {
  const double s = ms * 1e-3;
  std::printf("%-46s %9.3f ms", name.c_str(), ms);
  if (bytes > 0) std::printf("  %7.0f GB/s (%3.0f%% of copy)", bytes / s * 1e-9, 100.0 * bytes / s / g_hbm);
  if (flops > 0) std::printf("  %6.0f TFLOP/s (%3.0f%% of cuBLAS peak)", flops / s * 1e-12, 100.0 * flops / s / g_mma);
  std::printf("\n");
}

cublasHandle_t g_cublas;

void cublas_gemm(const Tensor& x, const Tensor& w, Tensor& out) {
  const float alpha = 1.0f, beta = 0.0f;
  cublasStatus_t st = cublasGemmEx(g_cublas, CUBLAS_OP_T, CUBLAS_OP_N, int(w.rows), int(x.rows), int(x.cols), &alpha,
                                   w.data, CUDA_R_16BF, int(w.stride), x.data, CUDA_R_16BF, int(x.stride), &beta,
                                   out.data, out.dtype == DType::f32 ? CUDA_R_32F : CUDA_R_16BF, int(out.stride),
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "cublas failed: %s\n", cublasGetStatusString(st));
    std::exit(1);
  }
}

void bench_ceilings() {
  const size_t n = size_t(2) << 30;
  Dev a(n), b(n);
  CK(cudaMemset(a.p, 1, n));
  double ms = time_ms([&] { CK(cudaMemcpyAsync(b.p, a.p, n, cudaMemcpyDeviceToDevice)); });
  g_hbm = 2.0 * n / (ms * 1e-3);
  std::printf("%-46s %9.3f ms  %7.0f GB/s (read + write)\n", "ceiling: device copy 2 GiB", ms, g_hbm * 1e-9);
  const int N = 8192;
  Dev x(size_t(N) * N * 2), w(size_t(N) * N * 2), o(size_t(N) * N * 2);
  Tensor tx = rand_bf16(x, N, N, 1, 1), tw = rand_bf16(w, N, N, 1, 2), to = view(o.p, DType::bf16, N, N);
  ms = time_ms([&] { cublas_gemm(tx, tw, to); });
  g_mma = 2.0 * N * N * double(N) / (ms * 1e-3);
  std::printf("%-46s %9.3f ms  %6.0f TFLOP/s\n", "ceiling: cuBLAS bf16 8192^3", ms, g_mma * 1e-12);
  ms = time_ms([&] { launch_gemm_fixed_order(tx, tw, nullptr, to, nullptr); }, 5, 1);
  row("gemm fixed-order 8192^3", ms, 0, 2.0 * N * N * double(N));
}

void bench_gemm(const char* model, int M, int N, int K, DType out) {
  Dev x(size_t(M) * K * 2), w(size_t(N) * K * 2), o(size_t(M) * N * dtype_size(out));
  Tensor tx = rand_bf16(x, M, K, 1, 3), tw = rand_bf16(w, N, K, 0.02f, 4), to = view(o.p, out, M, N);
  const double flops = 2.0 * M * N * double(K);
  const double bytes = 2.0 * (double(M) * K + double(N) * K) + double(M) * N * dtype_size(out);
  char name[128];
  std::snprintf(name, sizeof name, "%s gemm M=%d N=%d K=%d cuBLAS", model, M, N, K);
  row(name, time_ms([&] { cublas_gemm(tx, tw, to); }), bytes, flops);
  std::snprintf(name, sizeof name, "%s gemm M=%d N=%d K=%d fixed", model, M, N, K);
  row(name, time_ms([&] { launch_gemm_fixed_order(tx, tw, nullptr, to, nullptr); }), bytes, flops);
}

// --- attention (issue 11: split-K decode, prefill) ------------------------------------
// One attention step over a paged cache with random block placement: every sequence
// has q_len new tokens and ctx keys in all. Bytes = the K/V bytes the step must read
// (each sequence's keys once per KV head) + q read + output written; FLOPs = the
// causal 4 * head_dim * q heads * (keys each query sees).
struct AttnStep {
  int nq, nkv, hd, bs = 16;
  std::vector<int> ctx, cu;
  int max_blocks = 0, total_blocks = 0;
  double bytes = 0, flops = 0;
  Dev *qkv = nullptr, *kc = nullptr, *vc = nullptr, *out = nullptr, *tab = nullptr, *dcu = nullptr, *dctx = nullptr;
  AttnStep(int nq_, int nkv_, int hd_, const std::vector<std::pair<int, int>>& seqs)  // (q_len, ctx)
      : nq(nq_), nkv(nkv_), hd(hd_) {
    std::mt19937 rng(7);
    cu.push_back(0);
    for (auto [q, c] : seqs) {
      ctx.push_back(c);
      cu.push_back(cu.back() + q);
      const int nb = (c + bs - 1) / bs;
      max_blocks = std::max(max_blocks, nb);
      total_blocks += nb;
      bytes += 2.0 * c * nkv * hd * 2;
      for (int i = 0; i < q; ++i) flops += 4.0 * hd * nq * (c - q + i + 1);
    }
    const int S = int(seqs.size()), T = cu.back();
    bytes += 4.0 * T * nq * hd;
    std::vector<int> blocks(static_cast<size_t>(total_blocks));
    std::iota(blocks.begin(), blocks.end(), 0);
    std::shuffle(blocks.begin(), blocks.end(), rng);
    std::vector<int> tables(size_t(S) * max_blocks, -1);
    size_t next = 0;
    for (int s = 0; s < S; ++s)
      for (int b = 0; b < (ctx[size_t(s)] + bs - 1) / bs; ++b) tables[size_t(s) * max_blocks + b] = blocks[next++];
    const int qkvw = (nq + 2 * nkv) * hd;
    const int64_t slots = int64_t(total_blocks) * bs;
    qkv = new Dev(size_t(T) * qkvw * 2);
    kc = new Dev(size_t(slots) * nkv * hd * 2);
    vc = new Dev(size_t(slots) * nkv * hd * 2);
    out = new Dev(size_t(T) * nq * hd * 2);
    rand_bf16(*qkv, T, qkvw, 1, 5);
    rand_bf16(*kc, slots, nkv * hd, 1, 6);
    rand_bf16(*vc, slots, nkv * hd, 1, 7);
    tab = new Dev(tables.size() * 4 + 4);
    dcu = new Dev(cu.size() * 4);
    dctx = new Dev(ctx.size() * 4);
    CK(cudaMemcpy(tab->p, tables.data(), tables.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dcu->p, cu.data(), cu.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dctx->p, ctx.data(), ctx.size() * 4, cudaMemcpyHostToDevice));
  }
  ~AttnStep() {
    for (Dev* d : {qkv, kc, vc, out, tab, dcu, dctx}) delete d;
  }
  // Median ms of the step with the work list for decode_part (0: attention_kernel
  // for every sequence, as the deterministic mode runs it) and the given variant.
  double time(int decode_part, int variant, int window = 0, float softcap = 0.0f) {
    const int S = int(ctx.size()), G = nq / nkv;
    std::vector<int32_t> work;
    const AttentionWork w = attention_work_build(cu.data(), ctx.data(), S, G, decode_part, work);
    Dev dwork(std::max<size_t>(w.ints(), 1) * 4);
    CK(cudaMemcpy(dwork.p, work.data(), w.ints() * 4, cudaMemcpyHostToDevice));
    Dev part(std::max<size_t>(size_t(w.slots) * attention_partial_slot_floats(nq, hd) * 4, 4));
    AttentionArgs a;
    a.qkv = qkv->p;
    a.qkv_stride = (nq + 2 * nkv) * hd;
    a.k_cache = kc->p;
    a.v_cache = vc->p;
    a.kv_stride = nkv * hd;
    a.out = out->p;
    a.out_stride = nq * hd;
    a.cu_seq_q = static_cast<int*>(dcu->p);
    a.context_lens = static_cast<int*>(dctx->p);
    a.num_seqs = S;
    a.num_tokens = cu.back();
    a.block_tables = static_cast<int*>(tab->p);
    a.max_blocks_per_seq = max_blocks;
    const int32_t* dw = static_cast<const int32_t*>(dwork.p);
    a.work = dw;
    a.num_work = w.items;
    a.decode_work = dw + 2 * size_t(w.items);
    a.num_decode_work = w.decode;
    a.combine_work = a.decode_work + 4 * size_t(w.decode);
    a.num_combine_work = w.combine;
    a.partials = static_cast<float*>(part.p);
    a.num_heads = nq;
    a.num_kv_heads = nkv;
    a.head_dim = hd;
    a.block_size = bs;
    a.scale = 1.0f / std::sqrt(float(hd));
    a.window = window;
    a.softcap = softcap;
    a.variant = variant;
    return time_ms([&] { launch_attention(a, nullptr); });
  }
};

// Decode over the grid of the issue: contexts 512-8192, batch 64-512, on the head
// shapes of Gemma-2B (MQA 8/1 x 256), Gemma-7B (16/16 x 256) and Llama-3-8B-like
// GQA (32/8 x 128). "old" = attention_kernel alone (the deterministic mode's
// path), "split" = the default mode's split-K decode kernel.
void bench_attention_decode_grid(bool quick) {
  struct Shape {
    const char* name;
    int nq, nkv, hd;
  };
  const Shape shapes[] = {{"2b", 8, 1, 256}, {"7b", 16, 16, 256}, {"gqa", 32, 8, 128}};
  const double kMaxKv = 24.0 * (1 << 30);  // K + V bytes one case may allocate
  for (const Shape& sh : shapes) {
    for (int B : {64, 128, 256, 512}) {
      for (int ctx : {512, 1024, 2048, 4096, 8192}) {
        if (quick && (ctx == 1024 || ctx == 4096 || B == 128)) continue;
        char name[160];
        std::snprintf(name, sizeof name, "decode %s %d/%d hd%d B=%d ctx=%d", sh.name, sh.nq, sh.nkv, sh.hd, B, ctx);
        if (4.0 * B * ctx * sh.nkv * sh.hd > kMaxKv) {
          std::printf("%-46s skipped: K/V over 24 GiB\n", name);
          continue;
        }
        AttnStep st(sh.nq, sh.nkv, sh.hd, std::vector<std::pair<int, int>>(size_t(B), {1, ctx}));
        const int part = attention_decode_part(sh.hd, sh.nq, sh.nkv);
        row(std::string(name) + " old", st.time(0, 0), st.bytes, 0);
        row(std::string(name) + " split", st.time(part, 0), st.bytes, 0);
      }
    }
  }
}

// Prefill: 16 sequences x 2048 fresh tokens, and 8 chunks of 512 after 1536 cached
// tokens, on head_dim 128 and 256; v1 = the single-buffered attention_kernel.
void bench_attention_prefill() {
  struct Shape {
    const char* name;
    int nq, nkv, hd;
  };
  const Shape shapes[] = {{"2b", 8, 1, 256}, {"7b", 16, 16, 256}, {"gqa", 32, 8, 128}};
  for (const Shape& sh : shapes) {
    for (int chunked : {0, 1}) {
      const std::vector<std::pair<int, int>> seqs =
          chunked ? std::vector<std::pair<int, int>>(8, {512, 2048}) : std::vector<std::pair<int, int>>(16, {2048, 2048});
      AttnStep st(sh.nq, sh.nkv, sh.hd, seqs);
      char name[160];
      std::snprintf(name, sizeof name, "prefill %s %d/%d hd%d %s", sh.name, sh.nq, sh.nkv, sh.hd,
                    chunked ? "8x512 after 1536" : "16x2048");
      row(std::string(name) + " v1", st.time(0, 1), 0, st.flops);
      row(std::string(name) + " v3", st.time(0, 0), 0, st.flops);
    }
  }
  // A sliding window of 1024 and soft-cap 50 (Gemma 2/3 local layers): time only.
  AttnStep st(8, 4, 256, std::vector<std::pair<int, int>>(16, {2048, 2048}));
  row("prefill 8/4 hd256 16x2048 window 1024 cap 50", st.time(0, 0, 1024, 50.0f), 0, 0);
}

void bench_rowwise(int T, int H, int I) {
  Dev x(size_t(T) * H * 2), r(size_t(T) * H * 2), w(size_t(H) * 2), o(size_t(T) * H * 2);
  Tensor tx = rand_bf16(x, T, H, 1, 8), tr = rand_bf16(r, T, H, 1, 9), tw = rand_bf16(w, 1, H, 0.1f, 10),
         to = view(o.p, DType::bf16, T, H);
  char name[128];
  std::snprintf(name, sizeof name, "add_rms_norm T=%d H=%d", T, H);
  row(name, time_ms([&] { launch_rms_norm(&tr, tx, tw, 1e-6f, 1.0f, to, nullptr); }), 4.0 * T * H * 2, 0);
  Dev gu(size_t(T) * 2 * I * 2), m(size_t(T) * I * 2);
  Tensor tgu = rand_bf16(gu, T, 2 * I, 2, 11), tm = view(m.p, DType::bf16, T, I);
  std::snprintf(name, sizeof name, "gated gelu T=%d I=%d", T, I);
  row(name, time_ms([&] { launch_gated_activation(tgu, Activation::gelu_tanh, tm, nullptr); }), 3.0 * T * I * 2, 0);
}

void bench_sample(int R, int V, float temperature) {
  Dev l(size_t(R) * V * 4), rows(size_t(R) * sizeof(SampleRow)), ids(size_t(R) * 4);
  fill_random_f32<<<1024, 256>>>(static_cast<float*>(l.p), size_t(R) * V, 12, 8.0f);
  std::vector<SampleRow> h(static_cast<size_t>(R));
  for (int r = 0; r < R; ++r) h[size_t(r)] = SampleRow{temperature, 0, 1.0f, 0.0f, uint64_t(r) * 7919, r};
  CK(cudaMemcpy(rows.p, h.data(), h.size() * sizeof(SampleRow), cudaMemcpyHostToDevice));
  Tensor tl = view(l.p, DType::f32, R, V);
  char name[128];
  std::snprintf(name, sizeof name, "sample R=%d V=%d T=%g", R, V, temperature);
  row(name, time_ms([&] { launch_sample(tl, static_cast<SampleRow*>(rows.p), R, static_cast<int*>(ids.p), nullptr); }),
      double(R) * V * 4, 0);
}

// --- sampling (issue 11): a sampled row against a greedy one -------------------
// Logits uniform in [-8, 8] over a 256k vocabulary. Greedy is the argmax kernel
// (any_sampled = false); the sampled rows are T 0.8 + top_k 50 + top_p 0.95 (the
// acceptance's "temperature + top_p + top_k"), then T 0.8 + top_p 0.95 alone and T 1
// alone, on v1 (a block a row) and v2 (a cluster a row, sm_90).
void bench_sampling_vs_greedy() {
  const int V = 256000;
  for (int R : {64, 256, 1024}) {
    Dev l(size_t(R) * V * 4), rows(size_t(R) * sizeof(SampleRow)), ids(size_t(R) * 4);
    fill_random_f32<<<1024, 256>>>(static_cast<float*>(l.p), size_t(R) * V, 13, 8.0f);
    CK(cudaGetLastError());
    Tensor tl = view(l.p, DType::f32, R, V);
    auto set = [&](float t, int k, float p) {
      std::vector<SampleRow> h(static_cast<size_t>(R));
      for (int r = 0; r < R; ++r) h[size_t(r)] = SampleRow{t, k, p, 0.0f, uint64_t(r) * 7919 + 1, r + 17};
      CK(cudaMemcpy(rows.p, h.data(), h.size() * sizeof(SampleRow), cudaMemcpyHostToDevice));
    };
    auto run = [&](bool sampled, int variant) {
      return time_ms([&] {
        launch_sample(tl, static_cast<SampleRow*>(rows.p), R, static_cast<int*>(ids.p), nullptr, sampled, variant);
      });
    };
    const double bytes = double(R) * V * 4;
    char name[128];
    set(0.0f, 0, 1.0f);
    const double greedy = run(false, 0);
    std::snprintf(name, sizeof name, "sample greedy R=%d V=%d", R, V);
    row(name, greedy, bytes, 0);
    struct Case {
      const char* what;
      float t;
      int k;
      float p;
    };
    for (const Case& c : {Case{"T0.8 k50 p0.95", 0.8f, 50, 0.95f}, Case{"T0.8 p0.95", 0.8f, 0, 0.95f},
                          Case{"T1", 1.0f, 0, 1.0f}}) {
      set(c.t, c.k, c.p);
      for (int variant : {1, 2}) {
        if (variant == 2 && !sample_v2_available(V)) continue;
        const double ms = run(true, variant);
        std::snprintf(name, sizeof name, "sample v%d %s R=%d V=%d", variant, c.what, R, V);
        row(name, ms, bytes, 0);
        std::printf("%-46s %9.2fx greedy\n", "  sampled row / greedy row", ms / greedy);
      }
    }
  }
}

// --- add + RMSNorm on the f32 residual stream (issue 11) ------------------------
// What the model runs: residual f32 [T, H] += x bf16, out bf16 = norm * (1 + w).
// Bytes: residual read + written (8), x read (2), out written (2) per element.
void bench_add_rms_norm_f32() {
  for (int H : {2048, 3072, 4096}) {
    for (int T : {256, 8192}) {
      Dev x(size_t(T) * H * 2), r(size_t(T) * H * 4), w(size_t(H) * 2), o(size_t(T) * H * 2);
      Tensor tx = rand_bf16(x, T, H, 1, 8), tw = rand_bf16(w, 1, H, 0.1f, 10), to = view(o.p, DType::bf16, T, H);
      fill_random_f32<<<1024, 256>>>(static_cast<float*>(r.p), size_t(T) * H, 9, 2.0f);
      CK(cudaGetLastError());
      Tensor tr = view(r.p, DType::f32, T, H);
      for (int variant : {1, 0}) {
        char name[128];
        std::snprintf(name, sizeof name, "add_rms_norm f32 res %s T=%d H=%d", variant ? "scalar" : "vec8", T, H);
        row(name, time_ms([&] { launch_rms_norm(&tr, tx, tw, 1e-6f, 1.0f, to, nullptr, variant); }),
            12.0 * T * H, 0);
      }
    }
  }
}

}  // namespace

// --- LoRA (issue 15): the segmented shrink + expand beside the base projection ----
// Gemma-7B projections with rank-16 adapters, the rows spread over 8 adapters: a
// decode step of 160 sequences and a prefill step of 8192 tokens. The LoRA time is
// what the adapters add to the cuBLAS product printed above it.
void bench_lora() {
  const int rank = 16, slots = 8;
  struct Proj {
    const char* name;
    int N, K;
  };
  for (int T : {160, 8192}) {
    for (const Proj& pr : {Proj{"q", 4096, 3072}, Proj{"gate", 24576, 3072}, Proj{"down", 3072, 24576}}) {
      Dev x(size_t(T) * pr.K * 2), w(size_t(pr.N) * pr.K * 2), o(size_t(T) * pr.N * 2);
      Dev a(size_t(slots) * rank * pr.K * 2), b(size_t(slots) * pr.N * rank * 2), tmp(size_t(T) * rank * 4);
      Tensor tx = rand_bf16(x, T, pr.K, 1, 5), tw = rand_bf16(w, pr.N, pr.K, 0.02f, 6);
      Tensor ta = rand_bf16(a, int64_t(slots) * rank, pr.K, 0.02f, 7), tb = rand_bf16(b, int64_t(slots) * pr.N, rank, 0.1f, 8);
      Tensor to = view(o.p, DType::bf16, T, pr.N), tt = view(tmp.p, DType::f32, T, rank);
      std::vector<int32_t> seg;
      for (int g = 0; g < slots; ++g) seg.insert(seg.end(), {g * (T / slots), T / slots, g});
      Dev dseg(seg.size() * 4);
      CK(cudaMemcpy(dseg.p, seg.data(), seg.size() * 4, cudaMemcpyHostToDevice));
      char name[128];
      std::snprintf(name, sizeof name, "7b %s gemm M=%d N=%d K=%d cuBLAS", pr.name, T, pr.N, pr.K);
      const double base = time_ms([&] { cublas_gemm(tx, tw, to); });
      row(name, base, 0, 2.0 * T * pr.N * double(pr.K));
      std::snprintf(name, sizeof name, "  lora r16 x8 adapters");
      const double ms = time_ms([&] {
        launch_lora_add(tx, ta, tb, rank, static_cast<int32_t*>(dseg.p), slots, T / slots, tt, to, nullptr);
      });
      // Bytes: x read, out read and written, each adapter's A and B once.
      row(name, ms, 2.0 * T * pr.K + 4.0 * T * pr.N + 2.0 * slots * rank * (pr.K + pr.N), 0);
      std::printf("  lora / base product                              %6.2fx\n", ms / base);
    }
  }
}

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  cudaDeviceProp p;
  CK(cudaGetDeviceProperties(&p, 0));
  std::printf("device: %s, %d SMs, %.0f MiB\n", p.name, p.multiProcessorCount, p.totalGlobalMem / 1048576.0);
  if (cublasCreate(&g_cublas) != CUBLAS_STATUS_SUCCESS) return 1;
  bench_ceilings();
  // Gemma-2B: hidden 2048, q 2048 + kv 2*256, inter 16384, vocab 256000.
  for (int M : {1024, 8192}) {
    bench_gemm("2b qkv", M, 2560, 2048, DType::bf16);
    bench_gemm("2b gate_up", M, 32768, 2048, DType::bf16);
    bench_gemm("2b down", M, 2048, 16384, DType::bf16);
    if (!quick) bench_gemm("2b o", M, 2048, 2048, DType::bf16);
  }
  bench_gemm("2b lm_head", 1024, 256000, 2048, DType::f32);
  // Gemma-7B: hidden 3072, q/k/v 4096 each, inter 24576.
  for (int M : {256, 8192}) {
    bench_gemm("7b qkv", M, 12288, 3072, DType::bf16);
    bench_gemm("7b gate_up", M, 49152, 3072, DType::bf16);
    bench_gemm("7b down", M, 3072, 24576, DType::bf16);
  }
  bench_attention_decode_grid(quick);
  bench_attention_prefill();
  bench_rowwise(8192, 2048, 16384);
  bench_sample(1024, 256000, 0.0f);
  bench_sample(256, 256000, 1.0f);
  bench_sampling_vs_greedy();
  bench_add_rms_norm_f32();
  bench_lora();
  CK(cudaDeviceSynchronize());
  cublasDestroy(g_cublas);
  return 0;
}
