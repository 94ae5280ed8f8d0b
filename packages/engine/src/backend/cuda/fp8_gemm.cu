// FP8 weights on the device (fp8_gemm.h): the activation quantizer, the output
// scaling of the epilogue mode, and the cuBLASLt FP8 products with their plans.
#include "backend/cuda/fp8_gemm.h"

#include <cublasLt.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <tuple>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_kernels.h"

namespace bg {
namespace cuda {
namespace {

constexpr int kQuantThreads = 256;
constexpr int kScaleThreads = 256;  // 8 output columns each

[[noreturn]] void fail(const std::string& msg) { throw EngineError(ErrorCode::internal, "cuda fp8 gemm: " + msg); }
void expect(bool ok, const std::string& msg) {
  if (!ok) fail(msg);
}
bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

void check_lt(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  throw EngineError(s == CUBLAS_STATUS_ALLOC_FAILED ? ErrorCode::out_of_memory : ErrorCode::device,
                    std::string("cuBLASLt error in ") + what + ": " + cublasGetStatusName(s) + ": " +
                        cublasGetStatusString(s));
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < int(blockDim.x >> 5) ? scratch[lane] : 0.0f;
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ uint32_t e4m3x4(float a, float b, float c, float d) {
  const __nv_fp8x2_storage_t lo = __nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3);
  const __nv_fp8x2_storage_t hi = __nv_cvt_float2_to_fp8x2(make_float2(c, d), __NV_SATFINITE, __NV_E4M3);
  return uint32_t(lo) | uint32_t(hi) << 16;
}

// A block per row: the row's |max| (16-byte loads), then the row again (from L2)
// divided by its scale and converted, 8 bytes stored per 8 values.
__global__ void __launch_bounds__(kQuantThreads) quantize_rows_kernel(const bf16* __restrict__ x, int64_t ldx,
                                                                     uint8_t* __restrict__ xq,
                                                                     float* __restrict__ scales, int K) {
  __shared__ float red[32];
  const int64_t m = blockIdx.x;
  const uint4* row = reinterpret_cast<const uint4*>(x + m * ldx);
  const int chunks = K / 8;
  float amax = 0.0f;
  for (int c = threadIdx.x; c < chunks; c += kQuantThreads) {
    float v[8];
    unpack_bf16x8(row[c], v);
#pragma unroll
    for (int i = 0; i < 8; ++i) amax = fmaxf(amax, fabsf(v[i]));
  }
  amax = block_max(amax, red);
  // A division per value, as the CPU reference computes it (cuda_ops_test rebuilds
  // the quantized activations bit for bit).
  const float scale = amax > 0.0f ? amax / 448.0f : 1.0f;
  if (threadIdx.x == 0) scales[m] = scale;
  uint2* out = reinterpret_cast<uint2*>(xq + m * int64_t(K));
  for (int c = threadIdx.x; c < chunks; c += kQuantThreads) {
    float v[8];
    unpack_bf16x8(row[c], v);
    out[c] = make_uint2(e4m3x4(v[0] / scale, v[1] / scale, v[2] / scale, v[3] / scale),
                        e4m3x4(v[4] / scale, v[5] / scale, v[6] / scale, v[7] / scale));
  }
}

__device__ __forceinline__ void load8(const bf16* p, float v[8]) { unpack_bf16x8(*reinterpret_cast<const uint4*>(p), v); }
__device__ __forceinline__ void load8(const float* p, float v[8]) {
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

template <typename T>
__global__ void __launch_bounds__(kScaleThreads) scale_output_kernel(T* __restrict__ out, int64_t ld, int64_t M, int N,
                                                                    const float* __restrict__ row_scales,
                                                                    const float* __restrict__ col_scales,
                                                                    const bf16* __restrict__ bias) {
  const int n0 = (blockIdx.x * kScaleThreads + threadIdx.x) * 8;
  if (n0 >= N) return;
  float cs[8], b[8] = {};
#pragma unroll
  for (int i = 0; i < 8; ++i) cs[i] = col_scales[n0 + i];
  if (bias) load8(bias + n0, b);
  for (int64_t m = blockIdx.y; m < M; m += gridDim.y) {
    T* p = out + m * ld + n0;
    const float r = row_scales[m];
    float v[8];
    load8(p, v);
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = v[i] * r * cs[i] + b[i];
    store8(p, v);
  }
}

// Largest power of two (<= 256) dividing the address and the leading dimension in
// bytes: what cuBLASLt's heuristic may assume of a matrix (CUBLASLT_MATMUL_PREF_MIN_
// ALIGNMENT_*, 256 unless told; an algorithm relying on more would read wrongly).
uint32_t alignment_of(const void* p, int64_t ld_bytes) {
  uint32_t a = 256;
  while (a > 1 && (reinterpret_cast<uintptr_t>(p) % a || ld_bytes % a)) a >>= 1;
  return a;
}

cudaDataType_t lt_type(DType d) { return d == DType::f32 ? CUDA_R_32F : CUDA_R_16BF; }

}  // namespace

const char* fp8_scaling_name(Fp8Scaling s) { return s == Fp8Scaling::outer_vector ? "outer-vector" : "epilogue"; }

void launch_fp8_quantize_rows(const Tensor& x, uint8_t* xq, float* scales, cudaStream_t stream) {
  expect(x.dtype == DType::bf16, "activations must be bf16");
  expect(x.cols % 8 == 0 && x.stride % 8 == 0 && aligned16(x.data) && aligned16(xq),
         "activation rows must be 16-byte aligned, a multiple of 8 wide");
  if (x.rows == 0) return;
  quantize_rows_kernel<<<unsigned(x.rows), kQuantThreads, 0, stream>>>(x.ptr<bf16>(), x.stride, xq, scales,
                                                                       int(x.cols));
  BG_CUDA_CHECK_LAUNCH("fp8 quantize_rows");
}

void launch_fp8_scale_output(Tensor& out, const float* row_scales, const float* col_scales, const Tensor* bias,
                             cudaStream_t stream) {
  expect(out.cols % 8 == 0 && out.stride % 8 == 0 && aligned16(out.data), "output rows must be 16-byte aligned");
  expect(!bias || (bias->dtype == DType::bf16 && bias->cols == out.cols && aligned16(bias->data)), "bias shape");
  if (out.rows == 0) return;
  const dim3 grid(unsigned(ceil_div(out.cols / 8, kScaleThreads)), unsigned(std::min<int64_t>(out.rows, 65535)));
  const bf16* b = bias ? bias->ptr<bf16>() : nullptr;
  if (out.dtype == DType::bf16) {
    scale_output_kernel<<<grid, kScaleThreads, 0, stream>>>(out.ptr<bf16>(), out.stride, out.rows, int(out.cols),
                                                            row_scales, col_scales, b);
  } else {
    expect(out.dtype == DType::f32, "output must be bf16 or f32");
    scale_output_kernel<<<grid, kScaleThreads, 0, stream>>>(out.ptr<float>(), out.stride, out.rows, int(out.cols),
                                                            row_scales, col_scales, b);
  }
  BG_CUDA_CHECK_LAUNCH("fp8 scale_output");
}

// --- Fp8Linear -------------------------------------------------------------------------

// One allocation: the data, then the scales at the next 256-byte boundary.
Fp8Linear::Fp8Linear(int device, int64_t rows, int64_t cols) : device_(device) {
  const size_t data_bytes = (size_t(rows * cols) + 255) / 256 * 256;
  void* p = nullptr;
  BG_CUDA_CHECK(cudaSetDevice(device_));
  BG_CUDA_CHECK(cudaMalloc(&p, data_bytes + size_t(rows) * 4));
  w_.data = static_cast<uint8_t*>(p);
  w_.scales = reinterpret_cast<float*>(static_cast<char*>(p) + data_bytes);
  w_.rows = rows;
  w_.cols = cols;
}

Fp8Linear::~Fp8Linear() {
  cudaSetDevice(device_);
  cudaFree(const_cast<uint8_t*>(w_.data));
}

// --- Fp8Gemm ---------------------------------------------------------------------------

// Layouts and the heuristic's algorithm for one shape.
struct Fp8Plan {
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool found = false;
  ~Fp8Plan() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (d) cublasLtMatrixLayoutDestroy(d);
  }
};

struct Fp8Gemm::Impl {
  // (M, N, K, ldd, out dtype, scaling, fast_accum, A, B and D alignments)
  using PlanKey = std::tuple<int64_t, int64_t, int64_t, int64_t, int, int, bool, uint32_t, uint32_t, uint32_t>;
  using DescKey = std::tuple<int, int, bool>;  // (scaling, out dtype, fast_accum)

  int device = 0;
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  std::map<PlanKey, std::unique_ptr<Fp8Plan>> plans;
  std::map<DescKey, cublasLtMatmulDesc_t> descs;
  int64_t max_cols = 0;  // the widest weight uploaded: what reserve() sizes for
  void* scratch = nullptr;  // xq [rows, cols] e4m3, then the rows' scales
  size_t scratch_rows = 0, scratch_cols = 0;

  ~Impl() {
    plans.clear();
    for (auto& [key, d] : descs) cublasLtMatmulDescDestroy(d);
    if (lt) cublasLtDestroy(lt);
    if (scratch) cudaFree(scratch);
  }

  uint8_t* xq() const { return static_cast<uint8_t*>(scratch); }
  float* x_scales() const {
    return reinterpret_cast<float*>(static_cast<char*>(scratch) + (scratch_rows * scratch_cols + 255) / 256 * 256);
  }

  void ensure_scratch(int64_t rows, int64_t cols, cudaStream_t stream) {
    if (size_t(rows) <= scratch_rows && size_t(cols) <= scratch_cols) return;
    const size_t r = std::max(scratch_rows, size_t(rows)), c = std::max(scratch_cols, size_t(cols));
    BG_CUDA_CHECK(cudaStreamSynchronize(stream));  // queued products may still read the old scratch
    if (scratch) BG_CUDA_CHECK(cudaFree(scratch));
    scratch = nullptr;
    scratch_rows = scratch_cols = 0;
    BG_CUDA_CHECK(cudaMalloc(&scratch, (r * c + 255) / 256 * 256 + r * 4));
    scratch_rows = r;
    scratch_cols = c;
  }

  cublasLtMatmulDesc_t desc(Fp8Scaling scaling, DType out, bool fast_accum) {
    const DescKey key{int(scaling), int(out), fast_accum};
    auto it = descs.find(key);
    if (it != descs.end()) return it->second;
    cublasLtMatmulDesc_t d = nullptr;
    check_lt(cublasLtMatmulDescCreate(&d, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
    descs.emplace(key, d);
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    check_lt(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), "TRANSA");
    check_lt(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), "TRANSB");
    const int8_t fast = fast_accum ? 1 : 0;
    check_lt(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast), "FAST_ACCUM");
    if (scaling == Fp8Scaling::outer_vector) {
      const int32_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
      check_lt(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof mode), "A_SCALE_MODE");
      check_lt(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof mode), "B_SCALE_MODE");
    }
    return d;
  }

  Fp8Plan& plan(const Fp8Weight& w, const uint8_t* xq, int64_t M, const Tensor& out, Fp8Scaling scaling,
                bool fast_accum) {
    const int64_t N = w.rows, K = w.cols;
    const uint32_t align_a = alignment_of(w.data, K), align_b = alignment_of(xq, K),
                   align_d = alignment_of(out.data, out.stride * int64_t(dtype_size(out.dtype)));
    const PlanKey key{M, N, K, out.stride, int(out.dtype), int(scaling), fast_accum, align_a, align_b, align_d};
    auto it = plans.find(key);
    if (it != plans.end()) return *it->second;
    auto p = std::make_unique<Fp8Plan>();
    // Column-major views of the row-major operands (fp8_gemm.h).
    check_lt(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_8F_E4M3, uint64_t(K), uint64_t(N), K), "layout A");
    check_lt(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_8F_E4M3, uint64_t(K), uint64_t(M), K), "layout B");
    check_lt(cublasLtMatrixLayoutCreate(&p->d, lt_type(out.dtype), uint64_t(N), uint64_t(M), out.stride), "layout D");
    cublasLtMatmulPreference_t pref = nullptr;
    check_lt(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
    const uint64_t ws = workspace_bytes;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof align_a);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof align_b);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_d, sizeof align_d);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d, sizeof align_d);
    cublasLtMatmulHeuristicResult_t result{};
    int count = 0;
    const cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(lt, desc(scaling, out.dtype, fast_accum), p->a, p->b,
                                                            p->d, p->d, pref, 1, &result, &count);
    cublasLtMatmulPreferenceDestroy(pref);
    p->found = s == CUBLAS_STATUS_SUCCESS && count > 0;
    p->algo = result.algo;
    return *plans.emplace(key, std::move(p)).first->second;
  }

  cublasStatus_t run(Fp8Plan& p, cublasLtMatmulDesc_t d, const Fp8Weight& w, const uint8_t* xq, float beta,
                     Tensor& out, cudaStream_t stream) {
    const float alpha = 1.0f;
    return cublasLtMatmul(lt, d, &alpha, w.data, p.a, xq, p.b, &beta, out.data, p.d, out.data, p.d, &p.algo,
                          workspace, workspace_bytes, stream);
  }
};

bool Fp8Gemm::available(int device) {
  int major = 0, minor = 0;
  BG_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  BG_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  return major * 10 + minor >= 89;
}

Fp8Gemm::Fp8Gemm(int device, void* workspace, size_t workspace_bytes) : impl_(std::make_unique<Impl>()) {
  impl_->device = device;
  impl_->workspace = workspace;
  impl_->workspace_bytes = workspace_bytes;
  BG_CUDA_CHECK(cudaSetDevice(device));
  check_lt(cublasLtCreate(&impl_->lt), "cublasLtCreate");
}

Fp8Gemm::~Fp8Gemm() = default;

std::unique_ptr<QuantLinear> Fp8Gemm::upload(const QuantWeight& w) {
  if (w.format != QuantFormat::fp8_e4m3 || !w.k_perm.empty() || w.rows % 16 || w.cols % 16) return nullptr;
  std::optional<QuantWeight> folded;
  if (w.groups() > 1) {
    folded = quant_fp8_fold_rows(w, kFoldMaxRelL2);
    if (!folded) return nullptr;
  }
  const QuantWeight& q = folded ? *folded : w;
  auto out = std::make_unique<Fp8Linear>(impl_->device, q.rows, q.cols);
  const Fp8Weight& d = out->weight();
  BG_CUDA_CHECK(cudaMemcpy(const_cast<uint8_t*>(d.data), q.data.data(), q.data.size(), cudaMemcpyHostToDevice));
  BG_CUDA_CHECK(cudaMemcpy(const_cast<float*>(d.scales), q.scales.data(), size_t(q.rows) * 4, cudaMemcpyHostToDevice));
  impl_->max_cols = std::max(impl_->max_cols, q.cols);
  return out;
}

void Fp8Gemm::reserve(int64_t max_tokens, cudaStream_t stream) {
  if (impl_->max_cols > 0) impl_->ensure_scratch(max_tokens, impl_->max_cols, stream);
}

Fp8Scaling Fp8Gemm::linear(const Tensor& x, const QuantLinear& wq, const Tensor* bias, Tensor& out,
                           cudaStream_t stream, Fp8Options options) {
  const Fp8Weight& w = static_cast<const Fp8Linear&>(wq).weight();
  expect(x.cols == w.cols, "input width " + std::to_string(x.cols) + " != weight width " + std::to_string(w.cols));
  if (x.rows == 0) return options.scaling;
  impl_->ensure_scratch(x.rows, x.cols, stream);
  launch_fp8_quantize_rows(x, impl_->xq(), impl_->x_scales(), stream);
  return matmul(w, impl_->xq(), impl_->x_scales(), x.rows, bias, out, stream, options);
}

Fp8Scaling Fp8Gemm::matmul(const Fp8Weight& w, const uint8_t* xq, const float* x_scales, int64_t M,
                           const Tensor* bias, Tensor& out, cudaStream_t stream, Fp8Options options) {
  const int64_t N = w.rows, K = w.cols;
  expect(out.rows == M && out.cols == N, "output shape");
  expect(out.dtype == DType::bf16 || out.dtype == DType::f32, "output must be bf16 or f32");
  expect(N % 16 == 0 && K % 16 == 0 && aligned16(w.data) && aligned16(xq), "weight or activations not 16-byte aligned");
  expect(out.stride * int64_t(dtype_size(out.dtype)) % 16 == 0 && aligned16(out.data),
         "output rows must be 16-byte aligned");
  expect(!bias || (bias->dtype == DType::bf16 && bias->cols == N), "bias must be bf16 [1, N]");
  if (M == 0) return options.scaling;
  if (options.scaling == Fp8Scaling::outer_vector) {
    Fp8Plan& p = impl_->plan(w, xq, M, out, Fp8Scaling::outer_vector, options.fast_accum);
    if (p.found) {
      cublasLtMatmulDesc_t d = impl_->desc(Fp8Scaling::outer_vector, out.dtype, options.fast_accum);
      const void* ws = w.scales;
      const void* xs = x_scales;
      check_lt(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &ws, sizeof ws), "A_SCALE_POINTER");
      check_lt(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &xs, sizeof xs), "B_SCALE_POINTER");
      if (bias) launch_broadcast_rows(*bias, out, stream);
      const cublasStatus_t s = impl_->run(p, d, w, xq, bias ? 1.0f : 0.0f, out, stream);
      if (s == CUBLAS_STATUS_SUCCESS) return Fp8Scaling::outer_vector;
      if (s != CUBLAS_STATUS_NOT_SUPPORTED && s != CUBLAS_STATUS_INVALID_VALUE) check_lt(s, "cublasLtMatmul");
      p.found = false;  // refused at run time, not by the heuristic: this shape takes the epilogue from now on
    }
  }
  Fp8Plan& p = impl_->plan(w, xq, M, out, Fp8Scaling::epilogue, options.fast_accum);
  if (!p.found)
    throw EngineError(ErrorCode::device, "cuBLASLt has no FP8 algorithm for M=" + std::to_string(M) +
                                             " N=" + std::to_string(N) + " K=" + std::to_string(K));
  check_lt(impl_->run(p, impl_->desc(Fp8Scaling::epilogue, out.dtype, options.fast_accum), w, xq, 0.0f, out, stream),
           "cublasLtMatmul");
  launch_fp8_scale_output(out, x_scales, w.scales, bias, stream);
  return Fp8Scaling::epilogue;
}

}  // namespace cuda
}  // namespace bg
