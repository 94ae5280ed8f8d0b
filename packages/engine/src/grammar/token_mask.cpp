#include "grammar/token_mask.h"

#include <algorithm>
#include <cstring>

namespace bg {
namespace grammar {
namespace {

// A grammar's cache is cleared past 64 MiB of masks (2048 states of a 262k vocabulary).
constexpr size_t kMaxCacheBytes = size_t(64) << 20;

void set_bit(uint32_t* w, int32_t id) { w[id >> 5] |= 1u << (id & 31); }
void clear_bit(uint32_t* w, int32_t id) { w[id >> 5] &= ~(1u << (id & 31)); }

}  // namespace

CompiledGrammar::CompiledGrammar(Grammar g, std::shared_ptr<const TokenVocab> vocab)
    : grammar_(std::move(g)), vocab_(std::move(vocab)), matcher_(&grammar_) {}

size_t CompiledGrammar::cached_states() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cache_.size();
}

std::shared_ptr<MaskEntry> CompiledGrammar::compute(const MatchState& s) const {
  auto e = std::make_shared<MaskEntry>();
  const TokenVocab& v = *vocab_;
  e->allowed.assign(size_t(mask_words()), 0);
  e->rest = matcher_.remaining(s);
  e->can_end = matcher_.can_end(s);
  e->max_after = 0;
  MatchState first, walk, scratch;
  auto allow = [&](int32_t id, int32_t after) {
    set_bit(e->allowed.data(), id);
    e->max_after = std::max(e->max_after, after);
    if (after > e->rest) e->grow.emplace_back(id, after);
    else if (after < e->rest) e->shrink.emplace_back(id, after);
  };
  for (int b = 0; b < 256; ++b) {
    const std::vector<int32_t>& ids = v.by_first[size_t(b)];
    if (ids.empty()) continue;
    matcher_.advance(s, uint8_t(b), first);
    if (first.dead()) continue;
    const bool plain = matcher_.in_plain_string(first);
    const int32_t rest1 = matcher_.remaining(first);
    for (int32_t id : ids) {
      const std::string& bytes = v.bytes[size_t(id)];
      if (bytes.size() == 1 || (plain && v.plain_tail[size_t(id)])) {
        allow(id, rest1);
        continue;
      }
      walk = first;
      bool alive = true;
      for (size_t k = 1; k < bytes.size() && alive; ++k) {
        matcher_.advance(walk, uint8_t(bytes[k]), scratch);
        std::swap(walk, scratch);
        alive = !walk.dead();
      }
      if (alive) allow(id, matcher_.remaining(walk));
    }
  }
  return e;
}

std::shared_ptr<const MaskEntry> CompiledGrammar::entry(const MatchState& s) const { return entry(s, s.key()); }

std::shared_ptr<const MaskEntry> CompiledGrammar::cached(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = cache_.find(key);
  return it != cache_.end() ? it->second : nullptr;
}

std::shared_ptr<const MaskEntry> CompiledGrammar::entry(const MatchState& s, const std::string& key) const {
  if (std::shared_ptr<const MaskEntry> hit = cached(key)) return hit;
  std::shared_ptr<const MaskEntry> e = compute(s);  // outside the lock: other rows go on
  std::lock_guard<std::mutex> lock(mu_);
  if (cache_.size() * e->allowed.size() * 4 >= kMaxCacheBytes) cache_.clear();
  cache_.emplace(key, e);
  return e;
}

void CompiledGrammar::fill_mask(const MatchState& s, int32_t budget, const std::vector<int32_t>& end_ids,
                                uint32_t* words) const {
  fill_mask(*entry(s), budget, end_ids, words);
}

void CompiledGrammar::fill_mask(const MaskEntry& entry, int32_t budget, const std::vector<int32_t>& end_ids,
                                uint32_t* words) const {
  const size_t n = size_t(mask_words());
  const MaskEntry* e = &entry;
  const int32_t limit = budget - 1;  // bytes that may remain after this token
  if (limit >= e->max_after) {
    std::memcpy(words, e->allowed.data(), n * 4);
  } else if (limit >= e->rest) {
    std::memcpy(words, e->allowed.data(), n * 4);
    for (const auto& g : e->grow) if (g.second > limit) clear_bit(words, g.first);
  } else {
    // Behind schedule (max_tokens below the shortest value): take the tokens that
    // close the most.
    std::memset(words, 0, n * 4);
    int32_t best = INT32_MAX;
    for (const auto& sh : e->shrink) best = std::min(best, sh.second);
    const int32_t cut = std::max(best, limit);
    for (const auto& sh : e->shrink) if (sh.second <= cut) set_bit(words, sh.first);
    if (e->shrink.empty()) std::memcpy(words, e->allowed.data(), n * 4);
  }
  bool any = false;
  for (size_t i = 0; i < n && !any; ++i) any = words[i] != 0;
  if (e->can_end || !any) {  // !any: a dead state; ending is the only way out
    for (int32_t id : end_ids) if (id >= 0 && id < vocab_->size()) set_bit(words, id);
  }
}

bool GrammarState::accept(int32_t token) {
  if (token < 0 || token >= g_->vocab().size()) return false;
  const std::string& bytes = g_->vocab().bytes[size_t(token)];
  if (bytes.empty()) return false;
  return g_->matcher().advance_bytes(state_, bytes, scratch_);
}

}  // namespace grammar
}  // namespace bg
