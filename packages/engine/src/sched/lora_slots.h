// Which LoRA adapter sits in which slot of the device's adapter stack (S-LoRA's
// adapter cache, vLLM's max_loras). Pure logic, no backend.
//
// A request pins the slot of its adapter from admission until it finishes, so an
// adapter is never replaced under a running request. An adapter not resident takes
// a free slot, else the least recently used slot that no request pins (evicting its
// adapter); when every slot is pinned the request waits (acquire returns slot -1)
// until one is released. With nothing running every slot is unpinned, so a waiting
// request always gets one: no deadlock.
#pragma once
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace bg {

// Slots when the user sets none: one per adapter, as many as a tenth of the free
// device memory (after weights and activations, before the KV cache) holds, and never
// fewer than 8 (or the adapter count): 64 rank-16 Gemma-7B adapters (~100 MB each)
// all stay resident on an 80 GB card, so a batch over them is not bound by 8 slots
// (8 adapters' lines at a time), and the KV cache gives up 10 % at most.
int32_t lora_default_slots(int32_t adapters, size_t slot_bytes, size_t free_bytes);

// The order that puts a step's sequences of one adapter side by side (base first,
// then by slot; stable within a slot). The LoRA kernels run one segment per run of
// equal slots (Punica's SGMV), reading the adapter's A and B once per segment: lines
// that alternate adapters would give a segment, and a read, per sequence.
std::vector<size_t> lora_group_order(const std::vector<int32_t>& slots);

class LoraSlots {
 public:
  explicit LoraSlots(int32_t slots);

  struct Grant {
    int32_t slot = -1;   // -1: every slot is pinned, try again later
    bool load = false;   // the adapter is not in the slot yet: the caller loads it
  };
  // Pins a slot for `adapter` (an index >= 0). A resident adapter, or every slot
  // pinned, is answered without a look at every slot (the engine asks for each
  // queued request at every admission).
  Grant acquire(int32_t adapter);
  // The slot holding `adapter`, or -1.
  int32_t find(int32_t adapter) const;
  // Whether acquire() of an adapter that is not resident would get a slot.
  bool any_unpinned() const { return unpinned_ > 0; }
  // Drops one pin of `slot`; the adapter stays resident until evicted.
  void release(int32_t slot);
  // After a failed load into `slot`: it holds no adapter (its pin is released too).
  void forget(int32_t slot);

  int32_t size() const { return int32_t(slots_.size()); }
  int32_t adapter_in(int32_t slot) const { return slots_[size_t(slot)].adapter; }
  int32_t pins(int32_t slot) const { return slots_[size_t(slot)].pins; }
  // Adapters resident now, in slot order.
  std::vector<int32_t> resident() const;
  int64_t loads() const { return loads_; }
  int64_t evictions() const { return evictions_; }

 private:
  struct Slot {
    int32_t adapter = -1;
    int32_t pins = 0;
    uint64_t last_use = 0;
  };
  std::vector<Slot> slots_;
  std::unordered_map<int32_t, int32_t> slot_of_;  // adapter -> the slot holding it
  int32_t unpinned_ = 0;
  uint64_t clock_ = 0;
  int64_t loads_ = 0, evictions_ = 0;
};

}  // namespace bg
