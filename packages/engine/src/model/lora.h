// LoRA adapters (peft's format) on a loaded base model.
//
//  - lora_adapter_inspect reads adapter_config.json and says, before any weight is
//    read, whether the adapter can run on this base: peft_type LORA, target_modules
//    among the q/k/v/o/gate/up/down projections (peft's module names for the Gemma,
//    Llama, Mistral and Qwen families, or "all-linear"), no modules_to_save, DoRA,
//    bias, per-module rank/alpha patterns or trainable tokens. Anything else is
//    EngineError(unsupported) naming the field or the modules.
//  - lora_adapter_read reads adapter_model.safetensors into host f32 arrays, the
//    scale (lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora) folded into B.
//  - LoraStack holds `slots` adapters at once in backend memory, stacked per layer
//    and projection and padded to one rank (vLLM's and S-LoRA's layout), and adds
//    the updates of a step's adapters to the model's projections (Backend::lora_add,
//    grouped by adapter). Which adapter sits in which slot is the runtime's business
//    (sched/lora_slots.h).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "batchgen/backend.h"

namespace bg {

struct ModelConfig;

enum class LoraTarget : uint8_t { q, k, v, o, gate, up, down };
constexpr int kLoraTargets = 7;
const char* lora_target_name(LoraTarget t);  // peft's module name: "q_proj", ...

struct LoraAdapterInfo {
  std::string name;                  // what requests call it
  std::string path;                  // the adapter directory
  int32_t rank = 0;                  // r
  float alpha = 0;                   // lora_alpha
  bool rslora = false;               // use_rslora
  float scale = 0;                   // alpha / r, or alpha / sqrt(r) with rsLoRA
  std::array<bool, kLoraTargets> targets{};  // from target_modules
};

// Host weights of one adapter: per layer and target, A [rank, in] and scale * B
// [out, rank] in f32 (both empty where the adapter leaves that projection alone).
struct LoraWeights {
  struct Pair {
    std::vector<float> a, b;
  };
  int32_t rank = 0;
  std::vector<std::array<Pair, kLoraTargets>> layers;
};

// Reads and checks <path>/adapter_config.json against the base model. Throws
// EngineError(model_load) for a missing or malformed file, EngineError(unsupported)
// for what the engine does not run, naming it.
LoraAdapterInfo lora_adapter_inspect(const std::string& name, const std::string& path, const ModelConfig& base);

// Reads <path>/adapter_model.safetensors. Throws EngineError(model_load) naming a
// tensor that is missing, of the wrong shape or dtype, or not a LoRA A/B weight of a
// supported projection.
LoraWeights lora_adapter_read(const LoraAdapterInfo& info, const ModelConfig& base);

// (in, out) widths of a target's projection in the base model.
std::array<int64_t, 2> lora_target_dims(const ModelConfig& base, LoraTarget t);

class LoraStack {
 public:
  // Backend memory for `slots` adapters of rank up to `rank` on every layer and
  // target, and f32 scratch for steps of up to max_tokens tokens. Throws
  // EngineError(out_of_memory) when it is not there.
  LoraStack(Backend& backend, const ModelConfig& base, int32_t slots, int32_t rank, int32_t max_tokens);
  ~LoraStack();
  LoraStack(const LoraStack&) = delete;
  LoraStack& operator=(const LoraStack&) = delete;

  int32_t slots() const { return slots_; }
  int32_t rank() const { return rank_; }
  // Backend bytes one slot takes (every layer and target).
  static int64_t slot_bytes(const ModelConfig& base, int32_t rank, DType weight_dtype);

  // Puts an adapter's weights into `slot` (zeros where it has none), replacing
  // whatever was there. The caller makes sure no queued step still reads the slot.
  void load(int32_t slot, const LoraWeights& weights);

  // Where the model adds the adapters' updates to its projections. `x` is the
  // projection's input, `out` its output [T, qkv_width] (q, k, v slices),
  // [T, hidden] (o, down) or [T, 2I] (gate, up slices).
  enum class Site : uint8_t { qkv, o, gate_up, down };
  void apply(const StepTensors& step, int32_t layer, Site site, const Tensor& x, Tensor& out);

 private:
  struct Pair {
    Tensor a, b;  // [slots * rank, in], [slots * out, rank]
  };
  void release();
  void add(const StepTensors& step, int32_t layer, LoraTarget t, const Tensor& x, Tensor out);

  Backend& backend_;
  int32_t slots_, rank_;
  int64_t q_width_, kv_width_, inter_;
  std::vector<std::array<Pair, kLoraTargets>> layers_;
  // How many loaded slots use each target (a target no slot uses is skipped), and
  // which targets each slot's adapter has.
  std::array<int32_t, kLoraTargets> users_{};
  std::vector<std::array<bool, kLoraTargets>> slot_targets_;
  Tensor tmp_;  // f32 [max_tokens, rank]
};

}  // namespace bg
