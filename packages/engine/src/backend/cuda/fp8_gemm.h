// FP8 weights on the device (issue 14): e4m3 weights with one f32 scale per output
// row, multiplied by cuBLASLt's FP8 tensor-core GEMM (sm_89 and newer) against
// activations quantized to e4m3 per token right before each product.
//
//   out[m, n] = sx[m] * sw[n] * sum_k xq[m, k] * wq[n, k]  (+ bias[n])
//   sx[m] = max_k |x[m, k]| / 448 (1 for an all-zero row), xq = e4m3(x / sx), saturating
//
// A scale per token, not one per tensor: a row's result then never depends on the
// other rows of the batch (an outlier token costs only its own precision), and it
// is what cuBLASLt's outer-vector mode takes anyway (there A and B scales are both
// vectors). The scales reach the GEMM by device pointer, so no step synchronises.
//
// How the scales are applied (Fp8Scaling):
//   outer_vector  CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F for A (weight rows: sw)
//                 and B (tokens: sx) inside cuBLASLt's epilogue; the bias through
//                 beta = 1 on a C pre-filled with it, as the bf16 product does. Hopper
//                 (the mode's documented support is compute capability 9.0).
//   epilogue      cuBLASLt writes the unscaled product (bf16 or f32), then our
//                 kernel multiplies element (m, n) by sx[m] * sw[n] and adds the bias:
//                 one more read and write of out and, for bf16 out, one more rounding
//                 (2^-9). Ada (sm_89) and any shape outer_vector has no kernel for.
// A product asked for outer_vector falls back to epilogue when cuBLASLt refuses it
// (no heuristic result, or the matmul call itself saying "not supported"), per shape.
//
// cuBLASLt's FP8 layout rules: A transposed, B not ("TN", both K-major), compute and
// scale types f32, 16-byte aligned pointers and leading dimensions. Row-major
// out = x w^T is column-major out^T = w^T(op T) x^T: A = the weight ([N, K] row-major,
// lda = K), B = the quantized activations ([M, K], ldb = K), D = out (ldd = its
// stride). Fp8Gemm::upload therefore takes weights with rows and cols multiples of 16.
//
// Not used in the deterministic mode (its fixed-order GEMM is bf16: FP8 weights are
// dequantized at load there) nor before sm_89 (no FP8 tensor cores: dequantized too).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>

#include "batchgen/backend.h"

namespace bg {
namespace cuda {

// An e4m3 weight [rows, cols] row-major in device memory, one f32 scale per row.
struct Fp8Weight {
  const uint8_t* data = nullptr;
  const float* scales = nullptr;
  int64_t rows = 0, cols = 0;
};

enum class Fp8Scaling : uint8_t { outer_vector, epilogue };
const char* fp8_scaling_name(Fp8Scaling s);

struct Fp8Options {
  Fp8Scaling scaling = Fp8Scaling::outer_vector;  // asked for; the product says what it used
  // CUBLASLT_MATMUL_DESC_FAST_ACCUM: skips the periodic promotion of the tensor cores'
  // partial sums to f32 (faster, less accurate over long K). Off in the engine;
  // kernel_bench times both.
  bool fast_accum = false;
};

// x bf16 [M, K] (K % 8 == 0, rows 16-byte aligned) -> xq e4m3 [M, K] contiguous and
// scales[M], per the formula above. A block per row.
void launch_fp8_quantize_rows(const Tensor& x, uint8_t* xq, float* scales, cudaStream_t stream);

// In place on out [M, N] (bf16 or f32, N % 8 == 0, rows 16-byte aligned):
// out[m, n] = out[m, n] * row_scales[m] * col_scales[n] (+ bias[n], bf16 [1, N]).
void launch_fp8_scale_output(Tensor& out, const float* row_scales, const float* col_scales, const Tensor* bias,
                             cudaStream_t stream);

// A weight the backend holds for linear_quant: device memory freed with it.
class Fp8Linear final : public QuantLinear {
 public:
  Fp8Linear(int device, int64_t rows, int64_t cols);  // allocates; the caller fills data and scales
  ~Fp8Linear() override;
  int64_t rows() const override { return w_.rows; }
  int64_t cols() const override { return w_.cols; }
  int64_t bytes() const override { return w_.rows * w_.cols + 4 * w_.rows; }
  const Fp8Weight& weight() const { return w_; }

 private:
  int device_;
  Fp8Weight w_;
};

// cuBLASLt FP8 products on one device: the library handle, a plan (layouts and the
// heuristic's algorithm) per shape, and the scratch for quantized activations.
// Used from one thread at a time, like the backend.
class Fp8Gemm {
 public:
  // True when `device` has FP8 tensor cores (compute capability 8.9 or newer).
  static bool available(int device);
  // `workspace` (device memory, may be shared with other work on the same stream)
  // is cuBLASLt's; it must outlive this object.
  Fp8Gemm(int device, void* workspace, size_t workspace_bytes);
  ~Fp8Gemm();
  Fp8Gemm(const Fp8Gemm&) = delete;
  Fp8Gemm& operator=(const Fp8Gemm&) = delete;

  // w on the device as an Fp8Linear, or null when this product cannot take it (not
  // fp8, rows or cols not multiples of 16, block scales that do not fold into row
  // scales within kFoldMaxRelL2): the model then dequantizes it to bf16 at load.
  std::unique_ptr<QuantLinear> upload(const QuantWeight& w);
  // Activation scratch for up to max_tokens rows of the widest weight uploaded so
  // far (grows on demand past it, synchronising `stream` first).
  void reserve(int64_t max_tokens, cudaStream_t stream);

  // out = x @ dequant(w)^T (+ bias): x bf16 [M, K], w an Fp8Linear from upload(),
  // out [M, N] bf16 or f32, bias bf16 [1, N] or null. Quantizes x, then matmul().
  Fp8Scaling linear(const Tensor& x, const QuantLinear& w, const Tensor* bias, Tensor& out, cudaStream_t stream,
                    Fp8Options options = {});
  // The product of activations already quantized (launch_fp8_quantize_rows):
  // xq [M, K] contiguous with scales x_scales [M]. Returns the scaling it used.
  Fp8Scaling matmul(const Fp8Weight& w, const uint8_t* xq, const float* x_scales, int64_t M, const Tensor* bias,
                    Tensor& out, cudaStream_t stream, Fp8Options options = {});

  // Block scales folded per row are accepted up to this requantization error
  // (||folded - w|| / ||w||). e4m3's own rounding of a weight is about 2.5 % rel_l2
  // (3 mantissa bits); 2^-8 = 0.4 % more adds about 1 % to that in quadrature.
  static constexpr double kFoldMaxRelL2 = 1.0 / 256;

 private:
  struct Impl;  // the cuBLASLt state, kept out of this header with cublasLt.h
  std::unique_ptr<Impl> impl_;
};

}  // namespace cuda
}  // namespace bg
