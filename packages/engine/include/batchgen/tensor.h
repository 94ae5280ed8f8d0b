// Tensors as the backends see them: a typed, strided 2-D (or flat) view of backend
// memory. Owning nothing keeps the ops free of allocation policy; the model owns
// its buffers and hands views to the ops.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace bg {

enum class DType : uint8_t { f32, bf16, f16, i32 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: case DType::i32: return 4;
    case DType::bf16: case DType::f16: return 2;
  }
  return 0;
}

const char* dtype_name(DType t);

// A row-major view: `rows` rows of `cols` elements, consecutive rows `stride`
// elements apart (stride >= cols; a column slice of a wider buffer has stride > cols).
// A 1-D tensor is one row. `data` lives where the owning backend keeps memory
// (host for cpu, device for cuda).
struct Tensor {
  void* data = nullptr;
  DType dtype = DType::f32;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t stride = 0;

  int64_t numel() const { return rows * cols; }
  size_t bytes() const { return size_t(rows) * size_t(stride) * dtype_size(dtype); }
  bool contiguous() const { return stride == cols; }
  template <typename T> T* ptr() const { return static_cast<T*>(data); }

  // Rows [r0, r0+n) of this view.
  Tensor row_slice(int64_t r0, int64_t n) const {
    Tensor t = *this;
    t.data = static_cast<char*>(data) + size_t(r0) * size_t(stride) * dtype_size(dtype);
    t.rows = n;
    return t;
  }
  // Columns [c0, c0+n) of every row (a strided view).
  Tensor col_slice(int64_t c0, int64_t n) const {
    Tensor t = *this;
    t.data = static_cast<char*>(data) + size_t(c0) * dtype_size(dtype);
    t.cols = n;
    return t;
  }
};

// A contiguous view: `rows` rows of `cols` elements at `data`.
inline Tensor tensor_view(void* data, DType dtype, int64_t rows, int64_t cols) {
  Tensor t;
  t.data = data;
  t.dtype = dtype;
  t.rows = rows;
  t.cols = cols;
  t.stride = cols;
  return t;
}

// One error type crosses the engine's boundary; `code` is one of a closed set that
// the binding maps onto TypeScript error classes.
enum class ErrorCode : uint8_t {
  invalid_argument,   // bad option or request value
  model_load,         // missing / corrupt model files
  unsupported,        // architecture or feature we do not implement
  out_of_memory,      // allocation failed (host or device)
  device,             // device/runtime failure (CUDA error, no GPU)
  not_found,          // unknown request id
  internal,
};

const char* error_code_name(ErrorCode c);

struct EngineError : std::runtime_error {
  ErrorCode code;
  EngineError(ErrorCode c, const std::string& msg) : std::runtime_error(msg), code(c) {}
};

}  // namespace bg
