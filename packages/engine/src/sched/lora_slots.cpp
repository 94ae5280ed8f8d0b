#include "sched/lora_slots.h"

#include <algorithm>
#include <stdexcept>

namespace bg {

int32_t lora_default_slots(int32_t adapters, size_t slot_bytes, size_t free_bytes) {
  constexpr double kFraction = 0.1;
  constexpr int32_t kFloor = 8, kCeil = 4096;
  const double fit = slot_bytes > 0 ? double(free_bytes) * kFraction / double(slot_bytes) : double(kCeil);
  const int32_t room = int32_t(std::min(double(kCeil), std::max(double(kFloor), fit)));
  return std::max(0, std::min(adapters, room));
}

std::vector<size_t> lora_group_order(const std::vector<int32_t>& slots) {
  std::vector<size_t> order(slots.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return slots[a] < slots[b]; });
  return order;
}

LoraSlots::LoraSlots(int32_t slots) : slots_(size_t(slots > 0 ? slots : 0)), unpinned_(slots) {
  if (slots < 1) throw std::invalid_argument("LoraSlots needs at least one slot");
}

int32_t LoraSlots::find(int32_t adapter) const {
  auto it = slot_of_.find(adapter);
  return it == slot_of_.end() ? -1 : it->second;
}

LoraSlots::Grant LoraSlots::acquire(int32_t adapter) {
  Grant g;
  if (const int32_t s = find(adapter); s >= 0) {
    Slot& x = slots_[size_t(s)];
    if (x.pins++ == 0) --unpinned_;
    x.last_use = ++clock_;
    g.slot = s;
    return g;
  }
  if (unpinned_ == 0) return g;
  int32_t victim = -1;
  for (int32_t s = 0; s < size(); ++s) {
    const Slot& x = slots_[size_t(s)];
    if (x.pins > 0) continue;
    // A free slot first, then the least recently used unpinned one.
    const bool better = victim < 0 || (x.adapter < 0 && slots_[size_t(victim)].adapter >= 0) ||
                        ((x.adapter < 0) == (slots_[size_t(victim)].adapter < 0) &&
                         x.last_use < slots_[size_t(victim)].last_use);
    if (better) victim = s;
  }
  Slot& v = slots_[size_t(victim)];
  if (v.adapter >= 0) {
    ++evictions_;
    slot_of_.erase(v.adapter);
  }
  slot_of_[adapter] = victim;
  v.adapter = adapter;
  v.pins = 1;
  --unpinned_;
  v.last_use = ++clock_;
  ++loads_;
  g.slot = victim;
  g.load = true;
  return g;
}

void LoraSlots::release(int32_t slot) {
  Slot& x = slots_.at(size_t(slot));
  if (x.pins <= 0) throw std::logic_error("LoraSlots::release of an unpinned slot");
  if (--x.pins == 0) ++unpinned_;
}

void LoraSlots::forget(int32_t slot) {
  release(slot);
  slot_of_.erase(slots_[size_t(slot)].adapter);
  slots_[size_t(slot)].adapter = -1;
}

std::vector<int32_t> LoraSlots::resident() const {
  std::vector<int32_t> out;
  for (const Slot& s : slots_)
    if (s.adapter >= 0) out.push_back(s.adapter);
  return out;
}

}  // namespace bg
