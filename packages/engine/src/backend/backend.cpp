// backend_create and the names of the shared enums.
#include <cstdlib>
#include <string>

#include "batchgen/backend.h"

namespace bg {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::i32: return "i32";
  }
  return "unknown";
}

const char* error_code_name(ErrorCode c) {
  switch (c) {
    case ErrorCode::invalid_argument: return "invalid_argument";
    case ErrorCode::model_load: return "model_load";
    case ErrorCode::unsupported: return "unsupported";
    case ErrorCode::out_of_memory: return "out_of_memory";
    case ErrorCode::device: return "device";
    case ErrorCode::not_found: return "not_found";
    case ErrorCode::internal: return "internal";
  }
  return "internal";
}

namespace {

// "cuda" -> 0, "cuda:N" -> N; -1 when the string is not a CUDA device name.
int cuda_ordinal(const std::string& device) {
  if (device == "cuda") return 0;
  if (device.rfind("cuda:", 0) != 0 || device.size() == 5) return -1;
  int n = 0;
  for (size_t i = 5; i < device.size(); ++i) {
    char c = device[i];
    if (c < '0' || c > '9' || n > 100000) return -1;
    n = n * 10 + (c - '0');
  }
  return n;
}

}  // namespace

std::unique_ptr<Backend> backend_create(const BackendOptions& options) {
  if (options.device == "cpu") return cpu_backend_create(options);
  if (cuda_ordinal(options.device) >= 0) {
#ifdef BG_WITH_CUDA
    return cuda_backend_create(options);
#else
    throw EngineError(ErrorCode::unsupported,
                      "this build has no CUDA backend (device \"" + options.device +
                          "\"); rebuild the engine with a CUDA toolkit, or use device \"cpu\"");
#endif
  }
  throw EngineError(ErrorCode::invalid_argument,
                    "unknown device \"" + options.device + "\" (expected \"cpu\", \"cuda\" or \"cuda:N\")");
}

}  // namespace bg
