#include "runtime/lora_runtime.h"

#include <algorithm>

namespace bg {

LoraRuntime::LoraRuntime(const EngineOptions& options, Backend& backend, Model& model, int32_t max_tokens)
    : model_(model) {
  if (options.max_loras < 0) throw EngineError(ErrorCode::invalid_argument, "max_loras must be >= 0");
  for (const LoraSpec& spec : options.loras) {
    if (spec.name.empty()) throw EngineError(ErrorCode::invalid_argument, "a LoRA adapter needs a name");
    if (by_name_.count(spec.name))
      throw EngineError(ErrorCode::invalid_argument, "two LoRA adapters are named '" + spec.name + "'");
    adapters_.push_back(lora_adapter_inspect(spec.name, spec.path, model.config()));
    by_name_[spec.name] = int32_t(adapters_.size() - 1);
  }
  if (adapters_.empty()) return;
  int32_t rank = 0;
  for (const LoraAdapterInfo& a : adapters_) rank = std::max(rank, a.rank);
  slot_bytes_ = LoraStack::slot_bytes(model.config(), rank, backend.weight_dtype());
  const int32_t slots = options.max_loras > 0
                            ? options.max_loras
                            : lora_default_slots(int32_t(adapters_.size()), slot_bytes_, backend.info().free_memory);
  stack_ = std::make_unique<LoraStack>(backend, model.config(), slots, rank, max_tokens);
  slots_ = std::make_unique<LoraSlots>(slots);
  model_.lora_attach(stack_.get());
}

LoraRuntime::~LoraRuntime() {
  if (stack_) model_.lora_attach(nullptr);
}

int32_t LoraRuntime::find(const std::string& name) const {
  auto it = by_name_.find(name);
  if (it != by_name_.end()) return it->second;
  std::string known;
  for (const LoraAdapterInfo& a : adapters_) known += (known.empty() ? "" : ", ") + a.name;
  throw EngineError(ErrorCode::invalid_argument,
                    "unknown LoRA adapter '" + name + "' (" +
                        (known.empty() ? std::string("this engine has none") : "loaded: " + known) + ")");
}

uint64_t LoraRuntime::cache_salt(int32_t adapter) const {
  // FNV-1a of the name and directory: the same adapter keeps its cached blocks
  // across slot reloads; different adapters never share one.
  uint64_t h = 1469598103934665603ull;
  const LoraAdapterInfo& a = adapters_[size_t(adapter)];
  for (const std::string* s : {&a.name, &a.path}) {
    for (unsigned char c : *s) h = (h ^ c) * 1099511628211ull;
    h = (h ^ 0xffu) * 1099511628211ull;
  }
  return h ? h : 1;
}

int32_t LoraRuntime::acquire(int32_t adapter) {
  const LoraSlots::Grant g = slots_->acquire(adapter);
  if (g.slot < 0 || !g.load) return g.slot;
  try {
    stack_->load(g.slot, lora_adapter_read(adapters_[size_t(adapter)], model_.config()));
  } catch (...) {
    slots_->forget(g.slot);
    throw;
  }
  return g.slot;
}

void LoraRuntime::release(int32_t slot) { slots_->release(slot); }

std::vector<std::string> LoraRuntime::resident() const {
  std::vector<std::string> out;
  if (!slots_) return out;
  for (int32_t a : slots_->resident()) out.push_back(adapters_[size_t(a)].name);
  return out;
}

}  // namespace bg
