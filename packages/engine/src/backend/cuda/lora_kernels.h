// LoRA kernels of the CUDA backend (Backend::lora_add): the segmented shrink and
// expand of Punica's SGMV, one launch each. Kept apart from cuda_kernels.h so the
// adapter work stays in its own files.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "batchgen/tensor.h"

namespace bg {
namespace cuda {

// The largest adapter rank the kernels take (the expand keeps a tile of tmp rows
// of this many f32 in shared memory).
constexpr int32_t kLoraMaxRank = 256;

// For each segment (row0, rows, slot) of `segments` (device, [num_segments * 3]):
//   tmp[rows] = x[rows] a[slot*rank : +rank]^T            (f32, [>= T, rank])
//   out[rows] += tmp[rows] b[slot*N : +N]^T               (N = out.cols)
// x bf16 [T, K]; a bf16 [slots*rank, K]; b bf16 [slots*N, rank]; out bf16 or f32.
// max_rows: the largest segment's rows (sizes the grid).
void launch_lora_add(const Tensor& x, const Tensor& a, const Tensor& b, int32_t rank, const int32_t* segments,
                     int32_t num_segments, int32_t max_rows, Tensor& tmp, Tensor& out, cudaStream_t stream);

}  // namespace cuda
}  // namespace bg
