// LoRA adapters (peft's format) on a loaded base model.
//
//  - lora_adapter_inspect reads adapter_config.json and says, before any weight is
//    read, whether the adapter can run on this base: peft_type LORA, target_modules
//    among the q/k/v/o/gate/up/down projections (peft's module names for the Gemma,
//    Llama, Mistral and Qwen families, or "all-linear"), no modules_to_save, DoRA,
//    bias, per-module rank/alpha patterns or trainable tokens. Anything else is
//    EngineError(unsupported) naming the field or the modules.
//  - LoraStack holds `slots` adapters at once in backend memory, stacked per layer
//    and projection and padded to one rank (vLLM's and S-LoRA's layout), and adds
//    the updates of a step's adapters to the model's projections (Backend::lora_add,
//    grouped by adapter). LoraStack::read turns an adapter_model.safetensors into
//    one slot's bytes in host memory (the scale, lora_alpha / r or lora_alpha /
//    sqrt(r) with use_rslora, folded into B), on any thread; LoraStack::load queues
//    their copy into a slot. Which adapter sits in which slot, and which thread
//    reads it, is the runtime's business (runtime/lora_runtime.h).
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

// Which projections an adapter changes (from its weights).
using LoraTargets = std::array<bool, kLoraTargets>;

// Reads and checks <path>/adapter_config.json against the base model. Throws
// EngineError(model_load) for a missing or malformed file, EngineError(unsupported)
// for what the engine does not run, naming it.
LoraAdapterInfo lora_adapter_inspect(const std::string& name, const std::string& path, const ModelConfig& base);

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

  // Reads <info.path>/adapter_model.safetensors into `dst` (slot_bytes(base, rank(),
  // the weight dtype) of host memory) as one slot holds it: per layer and target, A [rank, in] then scale * B
  // [out, rank] in the weight dtype, padded with zeros to the stack's rank, zeros
  // where the adapter leaves a projection alone. Returns the projections it changes.
  // Uses nothing of the stack but its shape, so any thread may read while steps run.
  // Throws EngineError(model_load) naming a tensor that is missing, of the wrong
  // shape or dtype, or not a LoRA A/B weight of a supported projection.
  LoraTargets read(const LoraAdapterInfo& info, void* dst) const;

  // Queues the copy of an adapter read() into `slot` (Backend::upload_async: `src`
  // is host_alloc memory, left alone until Backend::upload_wait), replacing
  // whatever was there. Steps queued before read the old adapter; the caller makes
  // sure no later one does (the slot is pinned by nobody).
  void load(int32_t slot, const void* src, const LoraTargets& targets);

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
  const DType dtype_;  // the backend's weight dtype
  int32_t slots_, rank_;
  int64_t q_width_, kv_width_, inter_;
  std::array<std::array<int64_t, 2>, kLoraTargets> dims_;  // lora_target_dims
  std::vector<std::array<Pair, kLoraTargets>> layers_;
  // How many loaded slots use each target (a target no slot uses is skipped), and
  // which targets each slot's adapter has.
  std::array<int32_t, kLoraTargets> users_{};
  std::vector<LoraTargets> slot_targets_;
  Tensor tmp_;  // f32 [max_tokens, rank]
};

}  // namespace bg
