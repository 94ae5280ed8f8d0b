// Quantized Hugging Face checkpoints: config.json's "quantization_config" read
// into a QuantScheme, and each quantized linear of the safetensors read, in the
// layout its method documents, into our QuantWeight (batchgen/quant_weight.h):
//
//   fp8 (transformers' FineGrainedFP8), fbgemm_fp8, compressed-tensors FP8:
//     weight F8_E4M3 [N, K] and weight_scale_inv (fp8) or weight_scale (others),
//     F32, per tensor ([] or [1]), per channel ([N] or [N, 1]) or per block
//     ([ceil(N / br), ceil(K / bc)] for weight_block_size [br, bc]); w = e4m3 * scale.
//   awq (AutoAWQ "gemm"): qweight I32 [K, N / 8], qzeros I32 [K / G, N / 8], scales
//     F16 [K / G, N]; eight 4-bit values an int32 along the output dimension in
//     AWQ's order (nibble i holds column 8c + [0, 2, 4, 6, 1, 3, 5, 7][i]);
//     w = (q - z) * s.
//   gptq (AutoGPTQ / GPTQModel): qweight I32 [K / 8, N] packed along the input
//     dimension (nibble i of row r is column 8r + i), qzeros I32 [groups, N / 8]
//     packed along the output dimension, scales F16 [groups, N], g_idx I32 [K] (the
//     group of each input column: k / G, or any order with act-order); zero points
//     are stored minus one ("checkpoint_format" "gptq", the default) or as they are
//     ("gptq_v2"); w = (q - z) * s.
//   bitsandbytes 4-bit NF4 (what QLoRA and transformers save): weight U8
//     [N * K / 2, 1], two values a byte (first in the high nibble) in blocks of
//     `blocksize` consecutive values of the row-major weight; weight.absmax F32, or
//     U8 with nested (double-quantized) statistics weight.nested_absmax F32 and
//     weight.nested_quant_map F32 [256] (absmax = nested_quant_map[a] *
//     nested_absmax[i / nested_blocksize] + nested_offset); weight.quant_map F32
//     [16]; weight.quant_state.bitsandbytes__nf4 U8 holding the JSON of the
//     remaining state (quant_type, blocksize, shape, nested_*); w = quant_map[q] * absmax.
//
// A variant outside these is EngineError(unsupported) naming it: AWQ gemv/marlin/
// exllama packing or without zero points, GPTQ of other widths than 4 bits or in
// Marlin format, bitsandbytes 8-bit or FP4, compressed-tensors other than FP8
// weights, FP8 scales in UE8M0.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "batchgen/quant_weight.h"
#include "model/safetensors.h"

namespace bg {

class Json;

enum class QuantMethod : uint8_t { none, fp8, awq, gptq, bnb_nf4 };

struct QuantScheme {
  QuantMethod method = QuantMethod::none;
  std::string name;           // quant_method as config.json spells it ("fp8", "fbgemm_fp8", "awq", ...)
  int64_t group_size = 0;     // awq / gptq: columns per group; -1: one group a row (gptq)
  bool gptq_zeros_minus_one = true;  // gptq: zero points stored as z - 1 ("gptq" format, not "gptq_v2")
  std::vector<int64_t> fp8_block;    // fp8: weight_block_size [br, bc], empty when per tensor / channel

  bool quantized() const { return method != QuantMethod::none; }
  // "AWQ int4 g128", "GPTQ int4 g32 act-order", "FP8 e4m3 block 128x128", ... for reports.
  std::string describe() const;
};

// Reads config.json's "quantization_config" (`qc`, null when absent). `path` names
// config.json in errors. Throws EngineError(unsupported) for a method or variant we
// do not run, EngineError(model_load) for a malformed one.
QuantScheme quant_scheme_parse(const Json* qc, const std::string& path);

// The linear `prefix` ("model.layers.0.self_attn.q_proj") of a checkpoint of scheme
// `s`, of shape [rows, cols], as a QuantWeight; nullopt when the checkpoint holds
// it unquantized (prefix.weight in BF16, F16 or F32, as for modules the quantizer
// skipped). Throws EngineError(model_load) naming the tensor for missing tensors or
// wrong shapes, EngineError(unsupported) for a variant we do not read.
std::optional<QuantWeight> quant_linear_load(const SafetensorsSet& st, const QuantScheme& s,
                                             const std::string& prefix, int64_t rows, int64_t cols);

// The readers quant_linear_load dispatches to (quant_hf.cpp, quant_awq_gptq.cpp,
// quant_nf4.cpp).
QuantWeight quant_load_fp8(const SafetensorsSet& st, const QuantScheme& s, const std::string& prefix,
                           int64_t rows, int64_t cols);
QuantWeight quant_load_awq(const SafetensorsSet& st, const QuantScheme& s, const std::string& prefix,
                           int64_t rows, int64_t cols);
QuantWeight quant_load_gptq(const SafetensorsSet& st, const QuantScheme& s, const std::string& prefix,
                            int64_t rows, int64_t cols);
QuantWeight quant_load_nf4(const SafetensorsSet& st, const std::string& prefix, int64_t rows, int64_t cols);

// Helpers the readers share: a tensor that must exist with this dtype (as the
// header spells it) and shape, else EngineError(model_load) naming it and what was found.
const SafetensorsTensor& quant_tensor(const SafetensorsSet& st, const std::string& name, const char* dtype,
                                      const std::vector<int64_t>& shape);
// F16 / BF16 / F32 values of a float tensor as f32.
std::vector<float> quant_floats(const SafetensorsTensor& t);

}  // namespace bg
