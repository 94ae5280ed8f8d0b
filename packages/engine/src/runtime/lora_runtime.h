// The engine's LoRA adapters: the registry of named adapters (checked at load),
// the device stack of adapter slots, and which adapter each slot holds (LRU,
// pinned by the requests that use it). Adapters are read from disk when queued
// requests wait for them, on the loader's threads (runtime/lora_loader.h), and
// copied into a slot once read, so an engine serves more adapters than fit at
// once and a step never waits for a disk.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "batchgen/engine.h"
#include "model/lora.h"
#include "model/model.h"
#include "runtime/lora_loader.h"
#include "sched/lora_slots.h"

namespace bg {

class LoraRuntime {
 public:
  // Inspects every adapter of options.loras against the model (errors name the
  // adapter and what is wrong) and allocates options.max_loras slots (0:
  // lora_default_slots, one per adapter as far as a tenth of the free memory goes,
  // at least 8) of the largest rank among them, attached to
  // the model. No adapters: nothing is allocated and enabled() is false.
  LoraRuntime(const EngineOptions& options, Backend& backend, Model& model, int32_t max_tokens);
  ~LoraRuntime();

  bool enabled() const { return stack_ != nullptr; }
  // The adapter's index; throws EngineError(invalid_argument) naming the known ones.
  int32_t find(const std::string& name) const;
  // The adapter's part of a KV block's hash (never 0, the base model's).
  uint64_t cache_salt(int32_t adapter) const;
  // Pins a slot holding the adapter: when it is resident, or when it has been
  // read and a slot is free or can be evicted (its copy into the slot is then
  // queued). -1 otherwise, without waiting: the adapter is not read yet (name it to
  // prefetch()) or every slot is pinned. Throws EngineError when the adapter's
  // weights could not be read.
  int32_t acquire(int32_t adapter);
  // acquire(), reading the adapter on this thread when it has not been read
  // (prompt_logits, whose caller waits for it anyway); -1 only when every slot is
  // pinned.
  int32_t acquire_now(int32_t adapter);
  void release(int32_t slot);
  // The adapters of the requests that wait (acquire() gave -1), in queue order:
  // read ahead in the background, the first ones first.
  void prefetch(const std::vector<int32_t>& adapters);
  // Waits until a read ends, at most `timeout`: for a step with nothing to run
  // while requests wait for their adapters.
  void wait_for_read(std::chrono::milliseconds timeout);

  const std::vector<LoraAdapterInfo>& adapters() const { return adapters_; }
  std::vector<std::string> resident() const;
  int32_t slots() const { return stack_ ? stack_->slots() : 0; }
  int32_t rank() const { return stack_ ? stack_->rank() : 0; }
  int64_t slot_bytes() const { return slot_bytes_; }
  int64_t loads() const { return slots_ ? slots_->loads() : 0; }
  int64_t evictions() const { return slots_ ? slots_->evictions() : 0; }

 private:
  // Pins a slot for an adapter that is not resident and queues the copy of its
  // read bytes into it; -1 when every slot is pinned.
  int32_t load(int32_t adapter, const void* bytes, const LoraTargets& targets);

  Backend& backend_;
  Model& model_;
  std::vector<LoraAdapterInfo> adapters_;
  std::unordered_map<std::string, int32_t> by_name_;
  std::unique_ptr<LoraStack> stack_;
  std::unique_ptr<LoraSlots> slots_;
  std::unique_ptr<LoraLoader> loader_;  // after the stack: its readers use the stack's layout
  int64_t slot_bytes_ = 0;
};

}  // namespace bg
