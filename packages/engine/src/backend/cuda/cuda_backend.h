// The CUDA backend: the Backend contract (batchgen/backend.h) on one NVIDIA GPU.
//
//  - Memory: cudaMalloc per tensor; weights, activations and the KV cache in bf16,
//    logits in f32. info().free_memory is cudaMemGetInfo's, for KV sizing.
//  - linear: cuBLAS bf16 GEMM with f32 accumulation (the fastest kernel cuBLAS
//    picks for the shape), or, with BackendOptions.deterministic, our fixed-order
//    tensor-core GEMM (gemm.cu) so a row's result does not depend on the batch size.
//  - attention, norms, rotary, KV write, activation, gather and sampling: our own
//    kernels (cuda_kernels.h). Attention and every row-wise kernel are batch
//    invariant in both modes; only the GEMM differs between them.
//  - All work goes to one stream owned by the backend; sample() and
//    copy_to_host_f32() synchronise. The backend may be used from any one thread at
//    a time (it selects its device on every call).
//  - Errors: no GPU or a bad ordinal -> EngineError(device); an allocation the
//    device cannot serve -> EngineError(out_of_memory) with the size and the free
//    memory; any other CUDA/cuBLAS failure -> EngineError(device) naming the call.
#pragma once
#include <memory>

#include "batchgen/backend.h"

namespace bg {

// Number of CUDA devices visible to this process (0 when there is no driver or GPU).
int cuda_device_count();

}  // namespace bg
