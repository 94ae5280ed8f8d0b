#include "sched/block_manager.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "batchgen/sampling.h"

namespace bg {

uint64_t block_hash(uint64_t parent, const int32_t* tokens, int32_t n) {
  uint64_t h = rng_mix(parent ^ 0x9E3779B97F4A7C15ull);
  for (int32_t i = 0; i < n; ++i) h = rng_mix(h ^ uint64_t(uint32_t(tokens[i])));
  return rng_mix(h + uint64_t(n));
}

uint64_t block_hash_seed(uint64_t salt) { return rng_mix(salt + 0x2545F4914F6CDD1Dull); }

BlockManager::BlockManager(int64_t num_blocks, int32_t block_size) : block_size_(block_size) {
  if (block_size < 1) throw std::invalid_argument("block_size must be >= 1");
  if (num_blocks < 0 || num_blocks > INT32_MAX) throw std::invalid_argument("bad num_blocks");
  ref_counts_.assign(size_t(num_blocks), 0);
  keys_.assign(size_t(num_blocks), BlockKey{});
  lru_pos_.assign(size_t(num_blocks), lru_.end());
  free_.reserve(size_t(num_blocks));
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));
}

bool BlockManager::can_hold(SeqHandle seq, int64_t num_tokens) const {
  int64_t have = int64_t(table(seq).size());
  int64_t need = blocks_for(num_tokens) - have;
  return need <= num_free();
}

int32_t BlockManager::take_block() {
  int32_t b;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else {
    // Evict the least recently freed cached block: its prefix is forgotten.
    b = lru_.front();
    lru_.pop_front();
    lru_pos_[size_t(b)] = lru_.end();
    index_.erase(keys_[size_t(b)].hash);
    keys_[size_t(b)] = BlockKey{};
    ++evictions_;
  }
  ref_counts_[size_t(b)] = 1;
  return b;
}

bool BlockManager::ensure_capacity(SeqHandle seq, int64_t num_tokens) {
  if (!can_hold(seq, num_tokens)) return false;
  std::vector<int32_t>& t = tables_[seq];
  int64_t need = blocks_for(num_tokens) - int64_t(t.size());
  for (int64_t i = 0; i < need; ++i) t.push_back(take_block());
  return true;
}

int64_t BlockManager::capacity(SeqHandle seq) const {
  return int64_t(table(seq).size()) * block_size_;
}

void BlockManager::append_shared(SeqHandle seq, int32_t block) {
  if (block < 0 || size_t(block) >= ref_counts_.size() ||
      (ref_counts_[size_t(block)] == 0 && !registered(block))) {
    throw std::invalid_argument("append_shared: block " + std::to_string(block) +
                                " is neither allocated nor cached");
  }
  if (ref_counts_[size_t(block)]++ == 0) {  // back from the LRU pool
    lru_.erase(lru_pos_[size_t(block)]);
    lru_pos_[size_t(block)] = lru_.end();
  }
  tables_[seq].push_back(block);
}

int32_t BlockManager::lookup(const BlockKey& key) const {
  auto it = index_.find(key.hash);
  if (it == index_.end()) return -1;
  const BlockKey& k = keys_[size_t(it->second)];
  if (k.parent != key.parent || !std::equal(k.tokens, k.tokens + block_size_, key.tokens)) return -1;
  return it->second;
}

void BlockManager::register_block(SeqHandle seq, int64_t index, const BlockKey& key) {
  const std::vector<int32_t>& t = table(seq);
  if (index < 0 || size_t(index) >= t.size() || t[size_t(index)] < 0) {
    throw std::invalid_argument("register_block: seq has no block at index " + std::to_string(index));
  }
  const int32_t b = t[size_t(index)];
  if (registered(b) || index_.count(key.hash)) return;
  if (tokens_.empty()) tokens_.resize(ref_counts_.size() * size_t(block_size_));
  int32_t* dst = tokens_.data() + size_t(b) * size_t(block_size_);
  std::copy(key.tokens, key.tokens + block_size_, dst);
  keys_[size_t(b)] = BlockKey{key.hash, key.parent, dst};
  index_.emplace(key.hash, b);
}

void BlockManager::unref(int32_t b) {
  if (--ref_counts_[size_t(b)] != 0) return;
  if (registered(b)) {
    lru_pos_[size_t(b)] = lru_.insert(lru_.end(), b);
  } else {
    free_.push_back(b);
  }
}

void BlockManager::release_front(SeqHandle seq, int64_t count) {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  std::vector<int32_t>& t = it->second;
  const size_t n = size_t(std::min<int64_t>(count, int64_t(t.size())));
  for (size_t i = 0; i < n; ++i) {
    if (t[i] < 0) continue;
    unref(t[i]);
    t[i] = -1;
  }
}

void BlockManager::free_seq(SeqHandle seq) {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  // Release in reverse: a re-admitted sequence gets the same never-cached blocks
  // back in the same order (reproducible runs), and a sequence's tail enters the
  // LRU pool before its head, so the tail is evicted first and the shared head
  // of a prefix lasts longest.
  for (auto b = it->second.rbegin(); b != it->second.rend(); ++b) {
    if (*b >= 0) unref(*b);
  }
  tables_.erase(it);
}

const std::vector<int32_t>& BlockManager::table(SeqHandle seq) const {
  static const std::vector<int32_t> empty;
  auto it = tables_.find(seq);
  return it == tables_.end() ? empty : it->second;
}

int32_t BlockManager::slot(SeqHandle seq, int64_t pos) const {
  const std::vector<int32_t>& t = table(seq);
  const int32_t b = t.at(size_t(pos / block_size_));
  if (b < 0) throw std::out_of_range("slot: position " + std::to_string(pos) + " was released");
  return b * block_size_ + int32_t(pos % block_size_);
}

}  // namespace bg
