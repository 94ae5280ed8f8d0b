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
#include <cstdio>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_kernels.h"

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

// Decode or prefill attention over a paged cache with random block placement.
void bench_attention(const char* label, int nq, int nkv, int hd, int S, int q_len, int ctx_lo, int ctx_hi) {
  const int bs = 16;
  std::mt19937 rng(7);
  std::vector<int> ctx(static_cast<size_t>(S)), cu(static_cast<size_t>(S) + 1, 0);
  int max_blocks = 0, total_blocks = 0;
  double kv_bytes = 0, flops = 0;
  for (int s = 0; s < S; ++s) {
    ctx[size_t(s)] = std::uniform_int_distribution<int>(ctx_lo, ctx_hi)(rng);
    cu[size_t(s) + 1] = cu[size_t(s)] + q_len;
    const int nb = (ctx[size_t(s)] + bs - 1) / bs;
    max_blocks = std::max(max_blocks, nb);
    total_blocks += nb;
    kv_bytes += 2.0 * ctx[size_t(s)] * nkv * hd * 2;
    for (int i = 0; i < q_len; ++i) flops += 4.0 * hd * nq * (ctx[size_t(s)] - q_len + i + 1);
  }
  std::vector<int> blocks(static_cast<size_t>(total_blocks));
  std::iota(blocks.begin(), blocks.end(), 0);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  std::vector<int> tables(size_t(S) * max_blocks, -1);
  size_t next = 0;
  for (int s = 0; s < S; ++s)
    for (int b = 0; b < (ctx[size_t(s)] + bs - 1) / bs; ++b) tables[size_t(s) * max_blocks + b] = blocks[next++];
  const int T = S * q_len, G = nq / nkv;
  std::vector<int> work(size_t(2 * attention_work_bound(T, S, G)));
  const int W = attention_work_build(cu.data(), S, G, work.data());

  const int qkvw = (nq + 2 * nkv) * hd;
  const int64_t slots = int64_t(total_blocks) * bs;
  Dev qkv(size_t(T) * qkvw * 2), kc(size_t(slots) * nkv * hd * 2), vc(size_t(slots) * nkv * hd * 2),
      out(size_t(T) * nq * hd * 2);
  rand_bf16(qkv, T, qkvw, 1, 5);
  rand_bf16(kc, slots, nkv * hd, 1, 6);
  rand_bf16(vc, slots, nkv * hd, 1, 7);
  Dev d_cu(cu.size() * 4), d_ctx(ctx.size() * 4), d_tab(tables.size() * 4 + 4), d_work(size_t(W) * 8 + 8);
  CK(cudaMemcpy(d_cu.p, cu.data(), cu.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(d_ctx.p, ctx.data(), ctx.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(d_tab.p, tables.data(), tables.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(d_work.p, work.data(), size_t(W) * 8, cudaMemcpyHostToDevice));
  AttentionArgs a;
  a.qkv = qkv.p;
  a.qkv_stride = qkvw;
  a.k_cache = kc.p;
  a.v_cache = vc.p;
  a.kv_stride = nkv * hd;
  a.out = out.p;
  a.out_stride = nq * hd;
  a.cu_seq_q = static_cast<int*>(d_cu.p);
  a.context_lens = static_cast<int*>(d_ctx.p);
  a.num_seqs = S;
  a.num_tokens = T;
  a.block_tables = static_cast<int*>(d_tab.p);
  a.max_blocks_per_seq = max_blocks;
  a.work = static_cast<int*>(d_work.p);
  a.num_work = W;
  a.num_heads = nq;
  a.num_kv_heads = nkv;
  a.head_dim = hd;
  a.block_size = bs;
  a.scale = 0.0625f;
  for (int variant : {1, 0}) {  // 1: single-buffered; 0: the engine's choice (double-buffered)
    a.variant = variant;
    char name[160];
    std::snprintf(name, sizeof name, "%s attn v%d %d/%d hd%d S=%d q=%d ctx %d-%d", label, variant ? 1 : 2, nq, nkv,
                  hd, S, q_len, ctx_lo, ctx_hi);
    const double ms = time_ms([&] { launch_attention(a, nullptr); });
    row(name, ms, kv_bytes + 4.0 * T * nq * hd, flops);
  }
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

}  // namespace

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
  bench_attention("2b decode", 8, 1, 256, 1024, 1, 512, 768);
  bench_attention("7b decode", 16, 16, 256, 256, 1, 512, 768);
  bench_attention("2b prefill", 8, 1, 256, 16, 512, 512, 512);
  bench_attention("7b prefill", 16, 16, 256, 16, 512, 512, 512);
  bench_attention("llama decode", 32, 8, 128, 256, 1, 512, 2048);
  bench_rowwise(8192, 2048, 16384);
  bench_sample(1024, 256000, 0.0f);
  bench_sample(256, 256000, 1.0f);
  CK(cudaDeviceSynchronize());
  cublasDestroy(g_cublas);
  return 0;
}
