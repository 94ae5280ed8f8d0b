#include "runtime/lora_runtime.h"

#include <algorithm>
#include <thread>

namespace bg {
namespace {

// Adapters read ahead of their slot: as many as 2 GiB of host memory holds, 1 to 8
// (Gemma-7B rank-16 adapters, ~100 MB: 8), so that a step freeing several slots at
// once finds their next adapters read.
constexpr size_t kReadAheadBytes = size_t(2) << 30;
constexpr int32_t kReadAheadMax = 8;

// Reader threads: a quarter of the cores, 1 to 4 (the others run steps, grammar
// masks or the CPU backend's kernels).
int32_t reader_threads() {
  return std::clamp(int32_t(std::thread::hardware_concurrency() / 4), 1, 4);
}

}  // namespace

LoraRuntime::LoraRuntime(const EngineOptions& options, Backend& backend, Model& model, int32_t max_tokens)
    : backend_(backend), model_(model) {
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
  const int32_t buffers = std::min(
      int32_t(adapters_.size()),
      int32_t(std::clamp<size_t>(kReadAheadBytes / size_t(slot_bytes_), 1, size_t(kReadAheadMax))));
  loader_ = std::make_unique<LoraLoader>(backend, size_t(slot_bytes_), buffers, std::min(buffers, reader_threads()),
                                         [this](int32_t adapter, void* dst) {
                                           return stack_->read(adapters_[size_t(adapter)], dst);
                                         });
  model_.lora_attach(stack_.get());
}

LoraRuntime::~LoraRuntime() {
  loader_.reset();  // its readers use the stack and the adapters
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

int32_t LoraRuntime::load(int32_t adapter, const void* bytes, const LoraTargets& targets) {
  const LoraSlots::Grant g = slots_->acquire(adapter);
  if (g.slot < 0) return -1;
  try {
    stack_->load(g.slot, bytes, targets);
  } catch (...) {
    slots_->forget(g.slot);
    throw;
  }
  return g.slot;
}

int32_t LoraRuntime::acquire(int32_t adapter) {
  if (slots_->find(adapter) >= 0) return slots_->acquire(adapter).slot;
  const LoraLoader::Read* read = loader_->ready(adapter);
  if (!read) return -1;
  int32_t slot = -1;
  try {
    slot = load(adapter, read->data, read->targets);
  } catch (...) {
    loader_->copied(adapter);  // a copy may have been queued
    throw;
  }
  if (slot >= 0) loader_->copied(adapter);
  return slot;
}

int32_t LoraRuntime::acquire_now(int32_t adapter) {
  const int32_t slot = acquire(adapter);
  if (slot >= 0 || !slots_->any_unpinned()) return slot;
  // Host memory the copy reads until upload_wait.
  struct Staging {
    Backend& backend;
    void* mem;
    ~Staging() {
      try {
        backend.upload_wait();
      } catch (const std::exception&) {
        // The device failed: the error that matters is the one on its way out.
      }
      backend.host_free(mem);
    }
  } staging{backend_, backend_.host_alloc(size_t(slot_bytes_))};
  return load(adapter, staging.mem, stack_->read(adapters_[size_t(adapter)], staging.mem));
}

void LoraRuntime::release(int32_t slot) { slots_->release(slot); }

void LoraRuntime::prefetch(const std::vector<int32_t>& adapters) { loader_->want(adapters); }

void LoraRuntime::wait_for_read(std::chrono::milliseconds timeout) { loader_->wait(timeout); }

std::vector<std::string> LoraRuntime::resident() const {
  std::vector<std::string> out;
  if (!slots_) return out;
  for (int32_t a : slots_->resident()) out.push_back(adapters_[size_t(a)].name);
  return out;
}

}  // namespace bg
